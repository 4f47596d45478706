// The explorer's page: the cube's layers on a Leaflet map (tiles rendered by the server),
// a chip's provenance and similar chips on click, labels, a few-shot map, and export and
// import of the labels as GeoJSON. Everything comes from the server that serves this
// page; nothing from the internet.
'use strict';

const state = {
  labels: [],          // GeoJSON Features: Points at chip centres, Polygons as drawn
  drawing: [],         // the polygon being drawn, [lat, lng] vertices
  map: null,           // the last trained map: the server's answer
  mapLayer: null, heatLayer: null,
};

const $ = (id) => document.getElementById(id);

function say(text, error) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

async function api(path, body) {
  const init = body === undefined ? {} : {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)};
  const res = await fetch(path, init);
  const answer = await res.json();
  if (!res.ok) throw new Error(answer.error || `HTTP ${res.status}`);
  return answer;
}

const map = L.map('map', {zoomControl: true, worldCopyJump: true});
L.control.scale({imperial: false}).addTo(map);

function tiles(layer, options) {
  return L.tileLayer(`/tiles/${layer}/{z}/{x}/{y}.png`, Object.assign({maxZoom: 18, tileSize: 256}, options || {}));
}

// A lon/lat graticule at a round step for the zoom, redrawn as the map moves.
const graticule = L.layerGroup();
function drawGraticule() {
  graticule.clearLayers();
  const b = map.getBounds();
  // About 4 to 8 lines across the view, at a round step.
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30];
  const step = steps.find((s) => s >= (b.getEast() - b.getWest()) / 8) || 30;
  const style = {color: '#777', weight: 0.6, opacity: 0.7, interactive: false};
  const west = Math.floor(b.getWest() / step) * step, east = Math.ceil(b.getEast() / step) * step;
  const south = Math.max(-85, Math.floor(b.getSouth() / step) * step), north = Math.min(85, Math.ceil(b.getNorth() / step) * step);
  const label = (v, ns) => `${+Math.abs(v).toFixed(3)}°${v === 0 ? '' : (v > 0 ? ns[0] : ns[1])}`;
  for (let lon = west; lon <= east + 1e-9; lon += step) {
    graticule.addLayer(L.polyline([[south, lon], [north, lon]], style));
    graticule.addLayer(L.marker([b.getSouth(), lon], {interactive: false, icon: L.divIcon({className: 'graticule-label', html: label(lon, 'EW'), iconAnchor: [-2, 14]})}));
  }
  for (let lat = south; lat <= north + 1e-9; lat += step) {
    graticule.addLayer(L.polyline([[lat, west], [lat, east]], style));
    graticule.addLayer(L.marker([lat, b.getWest()], {interactive: false, icon: L.divIcon({className: 'graticule-label', html: label(lat, 'NS'), iconAnchor: [-2, 12]})}));
  }
}
map.on('moveend', () => { if (map.hasLayer(graticule)) drawGraticule(); });
graticule.on('add', drawGraticule);

const pca = tiles('pca'), overlays = {
  'chip grid and UTM zones': tiles('grid', {zIndex: 5}),
  'status (no data, failed)': tiles('status'),
  'clear observations': tiles('clear'),
  'Sentinel-2 as prepared, summer (zoom 9 on)': tiles('rgb-2', {minZoom: 9}),
  'graticule': graticule,
};
const control = L.control.layers({'embeddings (PCA as RGB)': pca}, overlays, {collapsed: false}).addTo(map);
pca.addTo(map);
overlays['chip grid and UTM zones'].addTo(map);
graticule.addTo(map);

const highlights = L.layerGroup().addTo(map);   // the clicked chip and its similar chips
const labelLayer = L.layerGroup().addTo(map);   // the labels
const drawingLayer = L.layerGroup().addTo(map); // a polygon being drawn

function legend(title, from, to) {
  const div = L.DomUtil.create('div', 'legend');
  div.innerHTML = `<div>${title}</div><div class="bar"></div><div>${from} &ndash; ${to}</div>`;
  return div;
}
const legendControl = L.control({position: 'bottomleft'});
legendControl.onAdd = () => legendControl.div;

function showLegend(title, from, to) {
  legendControl.div = legend(title, from, to);
  legendControl.remove();
  legendControl.addTo(map);
}

async function start() {
  const cube = await api('/api/cube');
  const pcs = cube.layers.pca.shares || [];
  $('cube').innerHTML = `${cube.embedded_chips} embedded chips in zones ${cube.zones.join(', ')}; `
    + `${cube.dim} dimensions, model ${cube.model_version || '?'}. Colours: principal components 1-3 as red, green, blue `
    + `(${pcs.map((s) => s.toFixed(0) + '%').join(', ')} of the variance).`;
  // The clear layer's name says whose observations it counts, and its range.
  const clear = overlays['clear observations'];
  control.removeLayer(clear);
  control.addOverlay(clear, `clear observations (${cube.layers.clear.of}, 0-${Math.round(cube.layers.clear.max)} over the seasons)`);
  if (cube.bbox) map.fitBounds([[cube.bbox[1], cube.bbox[0]], [cube.bbox[3], cube.bbox[2]]]);
  else map.setView([0, 0], 2);
  say('ready');
}

function row(cells) { return '<tr>' + cells.map((c) => `<td>${c}</td>`).join('') + '</tr>'; }

function provenance(madeFrom) {
  let html = '<table id="provenance"><tr><th>modality</th><th>season</th><th>items, dates</th><th>clear</th></tr>';
  for (const [modality, m] of Object.entries(madeFrom))
    for (const s of m.seasons) {
      const items = s.observations.map((o) => `${o.id} ${o.time}`).join('<br>');
      html += row([modality, s.season, items || '&ndash;', s.clear === null ? '&ndash;' : s.clear]);
    }
  return html + '</table>';
}

async function inspect(latlng) {
  const chip = await api(`/api/chip?lon=${latlng.lng}&lat=${latlng.lat}`);
  $('chip-hint').hidden = true;
  $('chip').innerHTML = `<p><b id="chip-id">${chip.id}</b> (zone ${chip.zone}), ${chip.lonlat[1].toFixed(4)}°, ${chip.lonlat[0].toFixed(4)}°: `
    + `<span id="chip-status">${chip.status}</span></p>` + provenance(chip.made_from)
    + (chip.images || []).map((m) => `<figure><img class="chip-image" src="/api/chip/image?id=${chip.id}&modality=${m}" `
      + `alt="${m} of ${chip.id}"><figcaption>${m} as prepared, the seasons DJF, MAM, JJA, SON left to right</figcaption></figure>`).join('');
  highlights.clearLayers();
  highlights.addLayer(L.polygon(chip.footprint.map((p) => [p[1], p[0]]), {color: '#fff', weight: 3, fill: false}));
  if (chip.status !== 'embedded') { $('similar').innerHTML = ''; return; }
  const found = await api(`/api/similar?id=${chip.id}&k=10`);
  $('similar').innerHTML = '';
  for (const hit of found.hits) {
    const li = document.createElement('li');
    li.textContent = `${hit.id}  ${hit.score.toFixed(3)}`;
    li.dataset.chip = hit.id;
    li.onclick = () => map.panTo([hit.lonlat[1], hit.lonlat[0]]);
    $('similar').appendChild(li);
    if (hit.id !== chip.id) highlights.addLayer(L.polygon(hit.footprint.map((p) => [p[1], p[0]]), {color: '#ff00c8', weight: 2, fill: false}));
  }
  if (state.heatLayer) control.removeLayer(state.heatLayer), map.removeLayer(state.heatLayer);
  state.heatLayer = tiles(found.heat.layer, {opacity: 0.9, zIndex: 3});
  control.addOverlay(state.heatLayer, 'similarity to the clicked chip');
  state.heatLayer.addTo(map);
  showLegend(`similarity to ${chip.id} (${found.search} search)`, found.heat.from.toFixed(2), found.heat.to.toFixed(2));
  say(`${chip.id}: ${found.hits.length} similar chips (${found.search} search)`);
}

function className() {
  const name = $('class-name').value.trim();
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error('a class name of letters, digits, _ and -');
  return name;
}

function labelsGeoJSON() {
  const name = className();
  return {type: 'FeatureCollection', features: state.labels.map((f) => ({type: 'Feature', geometry: f.geometry,
    properties: Object.assign({[name]: f.properties.value}, f.properties.chip ? {chip: f.properties.chip} : {})}))};
}

function drawLabels() {
  labelLayer.clearLayers();
  for (const f of state.labels) {
    const colour = f.properties.value ? '#1a9850' : '#d73027';
    if (f.geometry.type === 'Point') {
      const [lon, lat] = f.geometry.coordinates;
      labelLayer.addLayer(L.circleMarker([lat, lon], {radius: 6, color: '#000', weight: 1, fillColor: colour, fillOpacity: 1}));
    } else {
      labelLayer.addLayer(L.polygon(f.geometry.coordinates[0].map((p) => [p[1], p[0]]), {color: colour, weight: 2}));
    }
  }
  const n = state.labels.length, pos = state.labels.filter((f) => f.properties.value).length;
  $('label-count').textContent = `${n} labels (${pos} positive, ${n - pos} negative)`;
}

async function addPointLabel(latlng, value) {
  const chip = await api(`/api/chip?lon=${latlng.lng}&lat=${latlng.lat}`);
  if (chip.status !== 'embedded') throw new Error(`${chip.id} is ${chip.status}: only embedded chips can be labelled`);
  state.labels = state.labels.filter((f) => f.properties.chip !== chip.id);  // a chip's last label counts
  state.labels.push({type: 'Feature', geometry: {type: 'Point', coordinates: chip.lonlat}, properties: {value, chip: chip.id}});
  drawLabels();
  say(`${chip.id} labelled ${value ? 'positive' : 'negative'}`);
}

function mode() { return document.querySelector('input[name=mode]:checked').value; }

map.on('click', async (e) => {
  try {
    const m = mode();
    if (m === 'inspect') await inspect(e.latlng);
    else if (m === 'positive' || m === 'negative') await addPointLabel(e.latlng, m === 'positive' ? 1 : 0);
    else {
      state.drawing.push([e.latlng.lat, e.latlng.lng]);
      drawingLayer.clearLayers();
      drawingLayer.addLayer(L.polyline(state.drawing, {color: '#333', dashArray: '4 4'}));
    }
  } catch (err) {
    say(err.message, true);
  }
});

for (const r of document.querySelectorAll('input[name=mode]'))
  r.addEventListener('change', () => { $('polygon-tools').hidden = mode() !== 'polygon'; });

$('finish-polygon').onclick = () => {
  if (state.drawing.length < 3) return say('a polygon needs 3 points at least', true);
  const ring = state.drawing.map(([lat, lon]) => [lon, lat]);
  ring.push(ring[0]);
  const value = +document.querySelector('input[name=polygon-value]:checked').value;
  state.labels.push({type: 'Feature', geometry: {type: 'Polygon', coordinates: [ring]}, properties: {value}});
  state.drawing = [];
  drawingLayer.clearLayers();
  drawLabels();
};

$('clear-labels').onclick = () => { state.labels = []; drawLabels(); };

$('train').onclick = async () => {
  $('train-result').className = '';
  $('train-result').textContent = 'training…';
  try {
    const name = className();
    const t0 = performance.now();
    const result = await api('/api/train', {labels: labelsGeoJSON(), property: name});
    state.map = result;
    if (state.mapLayer) control.removeLayer(state.mapLayer), map.removeLayer(state.mapLayer);
    state.mapLayer = tiles(result.layer, {opacity: 0.85, zIndex: 4});
    control.addOverlay(state.mapLayer, `predicted ${name}`);
    state.mapLayer.addTo(map);
    const s = result.score;
    const score = s.accuracy !== null ? `accuracy ${s.accuracy.toFixed(2)}, F1 ${s.f1.toFixed(2)}` : `R² ${s.r2 === null ? '–' : s.r2.toFixed(2)}`;
    $('train-result').innerHTML = `<span id="map-done">Map of ${name}</span> from ${result.labelled_chips} labelled chips `
      + `(${result.train} to fit, ${result.validation} to size, ${result.test} held out): held-out ${score}. `
      + `${((performance.now() - t0) / 1000).toFixed(1)} s.` + result.warnings.map((w) => `<br><i>${w}</i>`).join('');
    showLegend(`predicted ${name}`, result.range[0].toFixed(2), result.range[1].toFixed(2));
  } catch (err) {
    $('train-result').className = 'error';
    $('train-result').textContent = err.message;
  }
};

$('export').onclick = async () => {
  try {
    const name = className(), labels = labelsGeoJSON();
    const result = await api('/api/export', {labels, name, map: state.map ? state.map.layer : ''});
    $('exported').innerHTML = result.files.map((f) => `<li>${f}</li>`).join('');
    // The labels as a download too, for a browser on another machine than the server.
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([JSON.stringify(labels, null, 2)], {type: 'application/geo+json'}));
    a.download = `labels-${name}.geojson`;
    a.click();
    say(`exported ${result.files.length} files`);
  } catch (err) {
    say(err.message, true);
  }
};

// Labels read back: the class is the features' number property (other than "chip").
function importLabels(doc) {
  if (doc.type !== 'FeatureCollection' || !Array.isArray(doc.features)) throw new Error('not a GeoJSON FeatureCollection');
  let name = null;
  const labels = [];
  doc.features.forEach((f, i) => {
    const props = f.properties || {};
    const keys = Object.keys(props).filter((k) => k !== 'chip' && typeof props[k] === 'number');
    if (keys.length !== 1) throw new Error(`feature ${i}: one number property (the class), not ${keys.length}`);
    if (name !== null && keys[0] !== name) throw new Error(`feature ${i}: class ${keys[0]}, the others' ${name}`);
    name = keys[0];
    if (!f.geometry || !['Point', 'Polygon'].includes(f.geometry.type)) throw new Error(`feature ${i}: a Point or a Polygon`);
    labels.push({type: 'Feature', geometry: f.geometry, properties: Object.assign({value: props[name] ? 1 : 0}, props.chip ? {chip: props.chip} : {})});
  });
  if (name) $('class-name').value = name;
  state.labels = labels;
  drawLabels();
  say(`imported ${labels.length} labels of ${name}`);
}

$('import').onchange = async (e) => {
  try {
    importLabels(JSON.parse(await e.target.files[0].text()));
  } catch (err) {
    say(`import: ${err.message}`, true);
  }
};

window.explorer = {state, map, labelsGeoJSON, importLabels};
start().catch((err) => say(err.message, true));
