#!/usr/bin/env python3
"""Drives `eo-pipeline serve`'s page in Debian's chromium, headless (chromium-driver,
python3-selenium), as a user would: the page loads with no console error; a click on a
chip shows its provenance and its similar chips; 10 chips labelled by clicks, then Train:
a map appears; a polygon drawn by clicks labels the chips inside it; Export writes the
labels, and importing that file gives the same labels.

usage: browse_explorer.py URL PLAN.json OUT_DIR
PLAN: {"inspect": {"lonlat": [lon, lat], "id": ID, "item": ITEM_ID, "similar": [the ids the 10 may be]},
       "positives": [[lon, lat], ...], "negatives": [[lon, lat], ...], "class": NAME,
       "polygon": [[lon, lat], ...] (its corners)}
Prints what it saw as JSON; exits 1 saying what failed."""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def fail(what):
    print(f"browse_explorer: {what}", file=sys.stderr)
    sys.exit(1)


def main():
    url, plan_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
    plan = json.load(open(plan_file))
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": out, "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    seen = {}
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(url)
        wait.until(lambda d: "embedded chips" in d.find_element(By.ID, "cube").text)
        wait.until(lambda d: d.find_element(By.ID, "status").text == "ready")
        seen["cube"] = driver.find_element(By.ID, "cube").text
        map_element = driver.find_element(By.ID, "map")

        def click_at(lonlat):
            # Zoomed in on the chip (as a user would), then a real click at its pixel.
            driver.execute_script("explorer.map.setView([arguments[1], arguments[0]], 12, {animate: false});", *lonlat)
            x, y = driver.execute_script(
                "const p = explorer.map.latLngToContainerPoint([arguments[1], arguments[0]]); return [p.x, p.y];", *lonlat)
            size = map_element.size
            ActionChains(driver).move_to_element_with_offset(map_element, x - size["width"] / 2,
                                                             y - size["height"] / 2).click().perform()

        # A click on a chip: its id, provenance and similar chips.
        inspect = plan["inspect"]
        click_at(inspect["lonlat"])
        wait.until(lambda d: d.find_elements(By.ID, "chip-id") and d.find_element(By.ID, "chip-id").text == inspect["id"])
        provenance = driver.find_element(By.ID, "provenance").text
        if inspect["item"] not in provenance:
            fail(f"the provenance of {inspect['id']} does not name {inspect['item']}: {provenance!r}")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#similar li")) == 10)
        similar = [li.get_attribute("data-chip") for li in driver.find_elements(By.CSS_SELECTOR, "#similar li")]
        if similar[0] != inspect["id"] or not set(similar) <= set(inspect["similar"]):
            fail(f"similar chips {similar}, expected {inspect['id']} first and all of them among {inspect['similar']}")
        outlined = driver.execute_script("let n = 0; explorer.map.eachLayer((l) => { if (l.options && l.options.color === '#ff00c8') n++; }); return n;")
        seen.update(provenance=provenance, similar=similar, outlined=outlined)
        heat = driver.execute_script("return [...document.querySelectorAll('img.leaflet-tile')].filter((i) => i.src.includes('/tiles/heat-')).length")
        if heat == 0:
            fail("no tile of the similarity heat layer on the map")
        os.makedirs(out, exist_ok=True)
        # Zoomed out to see the similar chips around it, all tiles in.
        driver.execute_script("explorer.map.setView([arguments[1], arguments[0]], 9, {animate: false});", *inspect["lonlat"])
        wait.until(lambda d: d.execute_script(
            "const t = [...document.querySelectorAll('img.leaflet-tile')];"
            "return t.some((i) => i.src.includes('/tiles/heat-')) && t.every((i) => i.complete);"))
        driver.save_screenshot(os.path.join(out, "explorer_click.png"))
        if outlined != 9:
            fail(f"{outlined} similar chips outlined on the map, expected 9 (the 10 found, less the chip itself)")

        # 10 labels by clicks, then Train: a map appears.
        driver.find_element(By.ID, "class-name").clear()
        driver.find_element(By.ID, "class-name").send_keys(plan["class"])
        for value, points in (("positive", plan["positives"]), ("negative", plan["negatives"])):
            driver.find_element(By.CSS_SELECTOR, f"input[name=mode][value={value}]").click()
            for i, lonlat in enumerate(points):
                before = driver.find_element(By.ID, "label-count").text
                click_at(lonlat)
                wait.until(lambda d: d.find_element(By.ID, "label-count").text != before)
        count = driver.find_element(By.ID, "label-count").text
        if not count.startswith("10 labels"):
            fail(f"after 10 clicks: {count!r}")
        driver.find_element(By.ID, "train").click()
        wait.until(lambda d: d.find_elements(By.ID, "map-done") or "error" in d.find_element(By.ID, "train-result").get_attribute("class"))
        result = driver.find_element(By.ID, "train-result").text
        if not driver.find_elements(By.ID, "map-done"):
            fail(f"Train: {result}")
        driver.execute_script("explorer.map.setView([arguments[1], arguments[0]], 10, {animate: false});", *plan["positives"][0])
        # Every tile of the map's layer in view, loaded.
        wait.until(lambda d: d.execute_script(
            "const t = [...document.querySelectorAll('img.leaflet-tile')].filter((i) => i.src.includes('/tiles/map-'));"
            "return t.length > 0 && t.every((i) => i.complete && i.naturalWidth === 256);"))
        seen["train"] = result
        driver.save_screenshot(os.path.join(out, "explorer_map.png"))

        # A polygon, drawn by a click at each corner: an 11th label, negative.
        driver.find_element(By.CSS_SELECTOR, "input[name=mode][value=polygon]").click()
        driver.find_element(By.CSS_SELECTOR, "input[name=polygon-value][value='0']").click()
        corners = plan["polygon"]
        centre = [sum(c[0] for c in corners) / len(corners), sum(c[1] for c in corners) / len(corners)]
        driver.execute_script("explorer.map.setView([arguments[1], arguments[0]], 12, {animate: false});", *centre)
        for corner in corners:
            x, y = driver.execute_script(
                "const p = explorer.map.latLngToContainerPoint([arguments[1], arguments[0]]); return [p.x, p.y];", *corner)
            size = map_element.size
            ActionChains(driver).move_to_element_with_offset(map_element, x - size["width"] / 2,
                                                             y - size["height"] / 2).click().perform()
        driver.find_element(By.ID, "finish-polygon").click()
        wait.until(lambda d: d.find_element(By.ID, "label-count").text.startswith("11 labels"))
        polygon = driver.execute_script("return explorer.labelsGeoJSON().features[10].geometry;")
        if polygon["type"] != "Polygon" or len(polygon["coordinates"][0]) != len(corners) + 1:
            fail(f"the polygon drawn is {polygon}")
        for drawn, corner in zip(polygon["coordinates"][0], corners):
            if abs(drawn[0] - corner[0]) > 1e-3 or abs(drawn[1] - corner[1]) > 1e-3:
                fail(f"polygon corner {drawn}, clicked at {corner}")

        # Export, then import the file written: the same labels.
        labels = driver.execute_script("return explorer.labelsGeoJSON();")
        driver.find_element(By.ID, "export").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#exported li"))
        files = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#exported li")]
        geojson = [f for f in files if f.endswith(".geojson")]
        if len(geojson) != 1:
            fail(f"export wrote {files}: no labels file")
        written = json.load(open(geojson[0]))
        if written != labels:
            fail(f"{geojson[0]} holds {written}, the page's labels are {labels}")
        driver.find_element(By.ID, "clear-labels").click()
        wait.until(lambda d: d.find_element(By.ID, "label-count").text.startswith("0 labels"))
        driver.find_element(By.ID, "import").send_keys(os.path.abspath(geojson[0]))
        wait.until(lambda d: d.find_element(By.ID, "label-count").text.startswith("11 labels"))
        again = driver.execute_script("return explorer.labelsGeoJSON();")
        if again != written:
            fail(f"imported back: {again}, written: {written}")
        seen.update(exported=files, round_trip=True)

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if errors:
            fail(f"console errors: {errors}")
        seen["console_errors"] = 0
    finally:
        driver.quit()
    print(json.dumps(seen, indent=2))


if __name__ == "__main__":
    main()
