#include "stages/downstream/hist_trees.hpp"

// Every rule below is xgboost 1.7.4's, read from its sources (Debian's xgboost_1.7.4.orig):
// the file named beside each piece. Arithmetic keeps xgboost's types (float where it has
// float, double where it has double) and its order; this file is compiled without FP
// contraction so that no sum becomes a fused multiply-add.

#include <algorithm>
#include <cmath>
#include <functional>
#include <math.h>
#include <numeric>
#include <random>
#include <stdexcept>

namespace eo {

namespace {

constexpr std::uint16_t kMissing = 0xFFFF;
constexpr float kRtEps = 1e-6f;         // include/xgboost/base.h
constexpr float kSketchFactor = 8.0f;   // QuantileSketchTemplate::kFactor

// ---- The quantile cuts: common/quantile.h (WQSummary), common/quantile.cc (MakeCuts) ----

struct Entry {  // a WQSummary entry; rows weigh 1, so ranks are counts
  float rmin, rmax, wmin, value;
  float rmin_next() const { return rmin + wmin; }
  float rmax_prev() const { return rmax - wmin; }
};

std::vector<Entry> prune(const std::vector<Entry>& src, std::size_t maxsize) {  // WQSummary::SetPrune
  if (src.size() <= maxsize) return src;
  const float begin = src[0].rmax;
  const float range = src.back().rmin - src[0].rmax;
  const std::size_t n = maxsize - 1;
  std::vector<Entry> out{src[0]};
  std::size_t i = 1, lastidx = 0;
  for (std::size_t k = 1; k < n; ++k) {
    const float dx2 = 2 * ((k * range) / n + begin);
    while (i < src.size() - 1 && dx2 >= src[i + 1].rmax + src[i + 1].rmin) ++i;
    if (i == src.size() - 1) break;
    if (dx2 < src[i].rmin_next() + src[i + 1].rmax_prev()) {
      if (i != lastidx) out.push_back(src[i]), lastidx = i;
    } else if (i + 1 != lastidx) {
      out.push_back(src[i + 1]), lastidx = i + 1;
    }
  }
  if (lastidx != src.size() - 1) out.push_back(src.back());
  return out;
}

std::size_t sketch_limit(std::size_t values, int max_bin) {  // HostSketchContainer, LimitSizeLevel
  const std::size_t n_bins = std::max<std::size_t>(1, std::min(static_cast<std::size_t>(max_bin), values));
  const double eps = 1.0 / (static_cast<float>(n_bins) * kSketchFactor);
  std::size_t nlevel = 1, limit = 0;
  while (true) {
    limit = std::min(values, static_cast<std::size_t>(std::ceil(nlevel / eps)) + 1);
    if ((std::size_t{1} << nlevel) * limit >= values) break;
    ++nlevel;
  }
  return limit;
}

struct Cuts {
  std::vector<float> values;
  float min_value;
};

// One feature's cuts from its non-missing values, where the sketch's queue holds them all
// (`HistTrees::reproduces`): the exact summary, pruned as GetSummary, AllReduce and MakeCuts
// prune it, then AddCutPoint.
Cuts feature_cuts(std::vector<float> v, int max_bin) {
  Cuts c;
  if (v.empty()) {  // num_cuts 0: xgboost's constant minimum and one bin above it
    c.min_value = 1e-5f;
    c.values.push_back(static_cast<float>(c.min_value + (::fabs(c.min_value) + 1e-5f)));
    return c;
  }
  const std::size_t limit = sketch_limit(v.size(), max_bin);
  std::sort(v.begin(), v.end());
  std::vector<Entry> summary;  // Queue::MakeSummary
  float wsum = 0;
  for (std::size_t i = 0; i < v.size();) {
    std::size_t j = i + 1;
    while (j < v.size() && v[j] == v[i]) ++j;
    const float w = static_cast<float>(j - i);
    summary.push_back({wsum, wsum + w, w, v[i]});
    wsum += w;
    i = j;
  }
  if (summary.size() > limit) summary = prune(summary, limit);
  const auto intermediate = static_cast<int>(
      std::min(v.size(), static_cast<std::size_t>(static_cast<float>(max_bin) * kSketchFactor)));
  summary = prune(summary, static_cast<std::size_t>(intermediate));
  const int max_num_bins = std::min(intermediate, max_bin);
  const std::vector<Entry> a = prune(summary, static_cast<std::size_t>(max_num_bins) + 1);
  // xgboost calls the C library's fabs(double) here, so these two sums are in double.
  c.min_value = static_cast<float>(a[0].value - ::fabs(a[0].value) - 1e-5f);
  const std::size_t required = std::min(a.size(), static_cast<std::size_t>(max_num_bins));
  for (std::size_t i = 1; i < required; ++i)
    if (i == 1 || a[i].value > c.values.back()) c.values.push_back(a[i].value);
  const float top = a.back().value;
  c.values.push_back(static_cast<float>(top + (::fabs(top) + 1e-5f)));
  return c;
}

// ---- Gains and weights: tree/param.h (CalcWeight), tree/split_evaluator.h ----

struct Stats {  // GradStats
  double g = 0, h = 0;
};

double threshold_l1(double w) { return w > 0.0 ? w : w < 0.0 ? w : 0.0; }  // alpha = 0

float leaf_weight(const TreeParams& p, Stats s) {
  if (s.h < p.min_child_weight || s.h <= 0.0) return 0;
  return static_cast<float>(-threshold_l1(s.g) / (s.h + p.lambda));
}

// CalcGainGivenWeight without constraints, threshold_l1(g)^2 / (h + lambda) in float and 0
// where h <= 0, written without branches (both computed) so that a scan's loop vectorises.
float gain_of(double g, double h, double lambda) {
  const double square = g * g;  // threshold_l1(g) is g, or 0 for 0 and NaN
  const float q = static_cast<float>(square == square ? square : 0.0) / static_cast<float>(h + lambda);
  return h <= 0 ? 0.0f : q;
}

struct Split {  // SplitEntryContainer
  float loss = 0;
  std::uint32_t sindex = 0;
  float value = 0;
  Stats left, right;

  std::uint32_t index() const { return sindex & ((1U << 31) - 1U); }
  bool default_left() const { return (sindex >> 31) != 0; }
  bool need_replace(float new_loss, std::uint32_t index) const {
    if (std::isinf(new_loss)) return false;
    if (this->index() <= index) return new_loss > loss;
    return !(loss > new_loss);
  }
  void update(float new_loss, std::uint32_t index, float new_value, bool dleft, Stats l, Stats r) {
    if (!need_replace(new_loss, index)) return;
    loss = new_loss, sindex = index | (dleft ? 1U << 31 : 0U), value = new_value, left = l, right = r;
  }
  void update(const Split& e) {
    if (need_replace(e.loss, e.index())) *this = e;
  }
};

}  // namespace

bool HistTrees::reproduces(const Rows& x, int max_bin) {
  if (x.empty() || max_bin < 2 || max_bin >= kMissing) return false;
  for (std::size_t f = 0; f < x.front().size(); ++f) {
    std::size_t values = 0;
    for (const auto& r : x) values += !std::isnan(r[f]);
    // The sketch's queue holds 2 x limit values; past that it summarises in levels.
    if (values > 2 * sketch_limit(values, max_bin)) return false;
  }
  return true;
}

HistTrees::HistTrees(const Rows& x, const std::vector<float>& y, const TreeParams& params)
    : p_(params), n_(x.size()), d_(x.empty() ? 0 : x.front().size()), labels_(y) {
  if (!reproduces(x, p_.max_bin)) throw std::invalid_argument("HistTrees: a feature holds more values than its sketch");
  if (y.size() != n_) throw std::invalid_argument("HistTrees: one label per row");
  bins_.resize(n_ * d_);
  for (std::size_t f = 0; f < d_; ++f) {
    std::vector<float> v;
    for (const auto& r : x)
      if (!std::isnan(r[f])) v.push_back(r[f]);
    dense_ = dense_ && v.size() == n_;
    Cuts c = feature_cuts(std::move(v), p_.max_bin);
    for (std::size_t i = 0; i < n_; ++i) {  // HistogramCuts::SearchBin
      const float value = x[i][f];
      if (std::isnan(value)) {
        bins_[f * n_ + i] = kMissing;
        continue;
      }
      auto b = static_cast<std::size_t>(std::upper_bound(c.values.begin(), c.values.end(), value) - c.values.begin());
      b -= b == c.values.size();
      bins_[f * n_ + i] = static_cast<std::uint16_t>(b);
    }
    // The rows of each bin, in row order (counting sort): the root's histograms walk them.
    std::vector<std::uint32_t> start(c.values.size() + 1, 0);
    for (std::size_t i = 0; i < n_; ++i)
      if (bins_[f * n_ + i] != kMissing) ++start[bins_[f * n_ + i] + 1];
    std::partial_sum(start.begin(), start.end(), start.begin());
    std::vector<std::uint32_t> rows(start.back()), next(start.begin(), start.end() - 1);
    for (std::uint32_t i = 0; i < n_; ++i)
      if (bins_[f * n_ + i] != kMissing) rows[next[bins_[f * n_ + i]]++] = i;
    bin_start_.push_back(std::move(start));
    bin_rows_.push_back(std::move(rows));
    cuts_.push_back(std::move(c.values));
    min_values_.push_back(c.min_value);
  }
  margin_.assign(n_, 0.5f);  // base_score
  global_rng_.seed(p_.seed);
  column_rng_.seed(static_cast<std::uint32_t>(global_rng_()));
}

void HistTrees::boost(int rounds) {
  for (int r = 0; r < rounds; ++r) {
    std::vector<float> grad(n_), hess(n_, 1.0f);  // reg:squarederror
    for (std::size_t i = 0; i < n_; ++i) grad[i] = margin_[i] - labels_[i];
    const std::size_t first = trees_.size();
    for (int t = 0; t < p_.parallel_trees; ++t) {
      trees_.emplace_back();
      grow(grad, hess, trees_.back());
    }
    for (std::size_t t = first; t < trees_.size(); ++t) {  // the prediction cache, by bins
      const Tree& tree = trees_[t];
      for (std::size_t i = 0; i < n_; ++i) {
        int k = 0;
        while (tree[k].left >= 0) {
          const std::uint16_t b = bins_[tree[k].feature * n_ + i];
          const bool left = b == kMissing ? tree[k].default_left : static_cast<int>(b) <= tree[k].split_bin;
          k = left ? tree[k].left : tree[k].right;
        }
        margin_[i] += tree[k].leaf;
      }
    }
  }
}

// One tree as QuantileHistMaker::Builder::UpdateTree grows it (tree/updater_quantile_hist.cc,
// tree/hist/evaluate_splits.h, tree/driver.h), with a node's histogram of a feature computed
// only when that node evaluates the feature: as a sum over its rows where xgboost builds it,
// as its parent's less its sibling's where xgboost subtracts. Bins that hold nothing are left
// out: adding nothing leaves a scan's sums, and so its gains, as they were, and a gain equal
// to one already seen never replaces it.
void HistTrees::grow(std::vector<float> grad, std::vector<float> hess, Tree& tree) {
  const float lr = p_.eta / static_cast<float>(p_.parallel_trees);
  if (p_.subsample < 1.0f) {  // InitSampling, on one thread
    using Lcg = std::linear_congruential_engine<std::uint64_t, 16807, 0, std::uint64_t{1} << 63>;
    const std::uint64_t initial_seed = global_rng_();
    Lcg engine(initial_seed % (std::uint64_t{1} << 63));
    std::bernoulli_distribution coin(p_.subsample);
    for (std::size_t i = 0; i < n_; ++i)
      if (!(hess[i] >= 0.0f && coin(engine))) grad[i] = 0, hess[i] = 0;
  }
  auto sample = [&](const std::vector<std::uint32_t>& from, float fraction) {  // ColumnSampler::ColSample
    if (fraction == 1.0f) return from;
    const int n = std::max(1, static_cast<int>(fraction * from.size()));
    std::vector<std::uint32_t> out = from;
    std::shuffle(out.begin(), out.end(), column_rng_);
    out.resize(static_cast<std::size_t>(n));
    std::sort(out.begin(), out.end());
    return out;
  };
  std::vector<std::uint32_t> all(d_);
  std::iota(all.begin(), all.end(), 0u);
  const std::vector<std::uint32_t> tree_features = sample(all, p_.colsample_bytree);

  struct NodeState {
    std::vector<std::uint32_t> rows;  // the sampled rows it holds, in row order
    bool built = true;                // false: its histogram is its parent's less its sibling's
    int parent = -1, sibling = -1, depth = 0;
    Stats stats;
    float gain = 0;
    std::vector<std::int64_t> hist;   // per feature: offset into `pool` and count, or -1
    std::vector<std::uint32_t> count;
  };
  std::vector<NodeState> state;
  std::vector<Bin>& pool = pool_;  // every node's histograms, feature by feature; kept between trees
  std::size_t used = 0;
  struct Sum {
    double g = 0, h = 0;
    int stamp = 0;
  };
  std::vector<Sum> sums;  // a built histogram's bins, dense while it is summed
  std::vector<std::uint32_t> touched;
  int stamp_now = 0;
  auto add_node = [&](int parent, int depth) {
    NodeState s;
    s.parent = parent, s.depth = depth;
    s.hist.assign(d_, -1);
    s.count.assign(d_, 0);
    state.push_back(std::move(s));
    tree.emplace_back();
    return static_cast<int>(tree.size()) - 1;
  };
  // The histogram of node k over feature f, as bins in ascending order.
  std::function<void(int, std::uint32_t)> need = [&](int k, std::uint32_t f) {
    if (state[k].hist[f] >= 0) return;
    const int parent = state[k].parent, sibling = state[k].sibling;
    if (!state[k].built) need(parent, f), need(sibling, f);
    const std::size_t nb = cuts_[f].size();
    const std::size_t most = state[k].built ? std::min(state[k].rows.size(), nb)
                                            : std::size_t{state[parent].count[f]} + state[sibling].count[f];
    if (pool.size() < used + most) pool.resize(std::max(pool.size() * 2, used + most));
    Bin* out = pool.data() + used;
    Bin* const out_begin = out;
    if (k == 0) {  // the root holds every row: walk the bins (unsampled rows add zeros)
      const std::uint32_t* start = bin_start_[f].data();
      const std::uint32_t* rows = bin_rows_[f].data();
      for (std::uint32_t b = 0; b < nb; ++b) {
        double g = 0, h = 0;
        for (std::uint32_t j = start[b]; j < start[b + 1]; ++j) g += grad[rows[j]], h += hess[rows[j]];
        if (g != 0 || h != 0) *out++ = {b, g, h};
      }
    } else if (state[k].built) {  // GHistBuilder::BuildHist: each row's pair added to its bin
      if (sums.size() < nb) sums.resize(nb), touched.resize(nb);
      ++stamp_now;
      std::size_t n_touched = 0;
      const std::uint16_t* col = &bins_[f * n_];
      for (std::uint32_t i : state[k].rows) {
        const std::uint16_t b = col[i];
        if (b == kMissing) continue;
        Sum& sum = sums[b];
        if (sum.stamp != stamp_now) sum = {0, 0, stamp_now}, touched[n_touched++] = b;
        sum.g += grad[i];
        sum.h += hess[i];
      }
      if (n_touched * 8 < nb) {  // few bins: sort them; many: walk every bin
        std::sort(touched.begin(), touched.begin() + static_cast<std::ptrdiff_t>(n_touched));
        for (std::size_t t = 0; t < n_touched; ++t) *out++ = {touched[t], sums[touched[t]].g, sums[touched[t]].h};
      } else {
        for (std::uint32_t b = 0; b < nb; ++b)
          if (sums[b].stamp == stamp_now) *out++ = {b, sums[b].g, sums[b].h};
      }
    } else {  // SubtractionHist: parent less sibling
      const Bin* a = pool.data() + state[parent].hist[f];
      const Bin* a_end = a + state[parent].count[f];
      const Bin* b = pool.data() + state[sibling].hist[f];
      const Bin* b_end = b + state[sibling].count[f];
      // The sibling's bins are among the parent's (its rows are), so the parent's bins are laid
      // out densely, the sibling's taken from them, and the differences read in the parent's order.
      if (sums.size() < nb) sums.resize(nb);
      ++stamp_now;
      for (const Bin* e = a; e != a_end; ++e) sums[e->bin] = {e->g, e->h, stamp_now};
      bool inside = true;
      for (const Bin* e = b; e != b_end; ++e) {
        Sum& sum = sums[e->bin];
        inside = inside && sum.stamp == stamp_now;
        sum.g -= e->g, sum.h -= e->h;
      }
      // Every sampled row weighs 1 (squared error), so a bin with rows has a nonzero hessian.
      if (!inside) throw std::logic_error("HistTrees: a child's bin missing from its parent's histogram");
      for (const Bin* e = a; e != a_end; ++e) {
        const Sum& sum = sums[e->bin];
        if (sum.g != 0 || sum.h != 0) *out++ = {e->bin, sum.g, sum.h};
      }
    }
    state[k].hist[f] = static_cast<std::int64_t>(used);
    state[k].count[f] = static_cast<std::uint32_t>(out - out_begin);
    used += state[k].count[f];
  };
  const double lambda = p_.lambda, min_weight = p_.min_child_weight;
  auto valid = [&](Stats l, Stats r) { return l.h >= min_weight && r.h >= min_weight; };
  auto split_gain = [&](Stats l, Stats r) { return gain_of(l.g, l.h, lambda) + gain_of(r.g, r.h, lambda); };
  // HistEvaluator::EvaluateSplits for one node over its sampled features.
  std::vector<double> scan_g, scan_h;  // a forward scan's running sums, its gains, its valid bins
  std::vector<float> scan_loss;
  std::vector<char> scan_valid;
  auto evaluate = [&](int k, const std::vector<std::uint32_t>& features) {
    Split best;
    const Stats parent = state[k].stats;
    const float root_gain = state[k].gain;
    for (std::uint32_t f : features) {
      need(k, f);
      const Bin* first = pool.data() + state[k].hist[f];
      const Bin* last = first + state[k].count[f];
      const std::vector<float>& cut = cuts_[f];
      Split local;
      // EnumerateSplit<+1>, missing values right: the running sums first, then every bin's
      // gain at once (element by element, so the compiler's vectors change no bit), then the
      // choice in bin order.
      const std::size_t m = static_cast<std::size_t>(last - first);
      if (scan_g.size() < m) scan_g.resize(m), scan_h.resize(m), scan_loss.resize(m), scan_valid.resize(m);
      Stats left;
      for (std::size_t i = 0; i < m; ++i) left.g += first[i].g, left.h += first[i].h, scan_g[i] = left.g, scan_h[i] = left.h;
      const double* lg = scan_g.data();
      const double* lh = scan_h.data();
      float* loss = scan_loss.data();
      char* ok = scan_valid.data();
      for (std::size_t i = 0; i < m; ++i) {
        const double rg = parent.g - lg[i], rh = parent.h - lh[i];
        loss[i] = gain_of(lg[i], lh[i], lambda) + gain_of(rg, rh, lambda) - root_gain;
        ok[i] = valid({lg[i], lh[i]}, {rg, rh});
      }
      for (std::size_t i = 0; i < m; ++i)
        if (ok[i])
          local.update(loss[i], f, cut[first[i].bin], false, {lg[i], lh[i]}, {parent.g - lg[i], parent.h - lh[i]});
      if (!(left.g == parent.g && left.h == parent.h)) {  // EnumerateSplit<-1>: missing values left
        Stats acc, rest;
        for (const Bin* e = last; e != first;) {
          --e;
          acc.g += e->g, acc.h += e->h;
          rest = {parent.g - acc.g, parent.h - acc.h};
          if (valid(acc, rest)) {
            const float at = e->bin == 0 ? min_values_[f] : cut[e->bin - 1];
            local.update(static_cast<float>(split_gain(rest, acc) - root_gain), f, at, true, rest, acc);
          }
        }
      }
      best.update(local);
    }
    return best;
  };
  auto node_features = [&] { return sample(tree_features, p_.colsample_bynode); };  // GetFeatureSet

  // InitRoot
  const int root = add_node(-1, 0);
  for (std::uint32_t i = 0; i < n_; ++i)
    if (hess[i] != 0 || grad[i] != 0) state[root].rows.push_back(i);
  Stats root_stats;
  if (dense_) {  // the sum of the first feature's histogram
    need(root, 0);
    const Bin* b = pool.data() + state[root].hist[0];
    for (std::uint32_t i = 0; i < state[root].count[0]; ++i) root_stats.g += b[i].g, root_stats.h += b[i].h;
  } else {
    for (std::uint32_t i : state[root].rows) root_stats.g += grad[i], root_stats.h += hess[i];
  }
  state[root].stats = root_stats;
  state[root].gain = gain_of(root_stats.g, root_stats.h, lambda);
  tree[root].leaf = lr * leaf_weight(p_, root_stats);

  struct Candidate {
    int node;
    Split split;
  };
  std::vector<Candidate> level = {{root, evaluate(root, node_features())}};
  while (!level.empty()) {
    std::vector<Candidate> expand;  // Driver::Pop with CPUExpandEntry::IsValid
    for (const Candidate& c : level)
      if (c.split.loss > kRtEps && c.split.left.h != 0 && c.split.right.h != 0 &&
          state[c.node].depth != p_.max_depth)
        expand.push_back(c);
    std::vector<Candidate> children;
    for (const Candidate& c : expand) {  // ApplyTreeSplit and UpdatePosition
      const int k = c.node, depth = state[k].depth;
      const int l = add_node(k, depth + 1), r = add_node(k, depth + 1);
      Node& node = tree[k];
      node.left = l, node.right = r;
      node.feature = c.split.index();
      node.split_value = c.split.value;
      node.default_left = c.split.default_left();
      const std::vector<float>& cut = cuts_[node.feature];
      for (std::size_t b = 0; b < cut.size(); ++b)
        if (cut[b] == node.split_value) node.split_bin = static_cast<int>(b);
      tree[l].leaf = leaf_weight(p_, c.split.left) * lr;
      tree[r].leaf = leaf_weight(p_, c.split.right) * lr;
      state[l].stats = c.split.left, state[r].stats = c.split.right;
      state[l].gain = gain_of(c.split.left.g, c.split.left.h, lambda);
      state[r].gain = gain_of(c.split.right.g, c.split.right.h, lambda);
      if (depth + 1 >= p_.max_depth) continue;  // Driver::IsChildValid: its children are leaves
      const std::uint16_t* col = &bins_[node.feature * n_];
      for (std::uint32_t i : state[k].rows) {
        const std::uint16_t b = col[i];
        const bool left = b == kMissing ? node.default_left : static_cast<int>(b) <= node.split_bin;
        state[left ? l : r].rows.push_back(i);
      }
      // BuildHistogram: the child with less hessian is summed, the other subtracted.
      const bool fewer_right = c.split.right.h < c.split.left.h;
      const int subtracted = fewer_right ? l : r;
      state[subtracted].built = false;
      state[subtracted].sibling = fewer_right ? r : l;
      children.push_back({l, {}});
      children.push_back({r, {}});
    }
    std::vector<std::vector<std::uint32_t>> features;  // drawn for every child before any is scanned
    for (std::size_t i = 0; i < children.size(); ++i) features.push_back(node_features());
    level.clear();
    for (std::size_t i = 0; i < children.size(); ++i) {
      Candidate c = children[i];
      c.split = evaluate(c.node, features[i]);
      if (c.split.loss > kRtEps) level.push_back(c);  // Driver::Push
    }
  }
}

std::vector<float> HistTrees::predict(const Rows& rows, int rounds) const {
  const std::size_t end = rounds < 0 ? trees_.size()
                                     : std::min(trees_.size(), static_cast<std::size_t>(rounds) * p_.parallel_trees);
  std::vector<float> out(rows.size(), 0.5f);
  for (std::size_t t = 0; t < end; ++t)  // CPUPredictor: tree by tree, in float
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Tree& tree = trees_[t];
      int k = 0;
      while (tree[k].left >= 0) {
        const float v = rows[i][tree[k].feature];
        k = std::isnan(v) ? (tree[k].default_left ? tree[k].left : tree[k].right)
                          : tree[k].left + !(v < tree[k].split_value);
      }
      out[i] += tree[k].leaf;
    }
  return out;
}

}  // namespace eo
