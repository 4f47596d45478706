#include "pipeline/core/utm.hpp"

#include <array>
#include <cmath>
#include <numbers>

namespace eo {
namespace {

constexpr double kA = 6378137.0;
constexpr double kF = 1.0 / 298.257223563;
constexpr double kK0 = 0.9996;
constexpr double kFalseEasting = 500000.0;
constexpr double kFalseNorthingSouth = 10000000.0;
constexpr double kDeg = std::numbers::pi / 180.0;

struct Series {
  double e;        // first eccentricity
  double e2;       // e^2
  double scale;    // k0 * A, A the rectifying radius
  std::array<double, 6> alpha;
  std::array<double, 6> beta;
};

Series make_series() {
  const double n = kF / (2 - kF);
  const double n2 = n * n, n3 = n2 * n, n4 = n3 * n, n5 = n4 * n, n6 = n5 * n;
  Series s{};
  s.e2 = kF * (2 - kF);
  s.e = std::sqrt(s.e2);
  s.scale = kK0 * kA / (1 + n) * (1 + n2 / 4 + n4 / 64 + n6 / 256);
  s.alpha = {n / 2 - 2 * n2 / 3 + 5 * n3 / 16 + 41 * n4 / 180 - 127 * n5 / 288 + 7891 * n6 / 37800,
             13 * n2 / 48 - 3 * n3 / 5 + 557 * n4 / 1440 + 281 * n5 / 630 - 1983433 * n6 / 1935360,
             61 * n3 / 240 - 103 * n4 / 140 + 15061 * n5 / 26880 + 167603 * n6 / 181440,
             49561 * n4 / 161280 - 179 * n5 / 168 + 6601661 * n6 / 7257600,
             34729 * n5 / 80640 - 3418889 * n6 / 1995840,
             212378941 * n6 / 319334400};
  s.beta = {n / 2 - 2 * n2 / 3 + 37 * n3 / 96 - n4 / 360 - 81 * n5 / 512 + 96199 * n6 / 604800,
            n2 / 48 + n3 / 15 - 437 * n4 / 1440 + 46 * n5 / 105 - 1118711 * n6 / 3870720,
            17 * n3 / 480 - 37 * n4 / 840 - 209 * n5 / 4480 + 5569 * n6 / 90720,
            4397 * n4 / 161280 - 11 * n5 / 504 - 830251 * n6 / 7257600,
            4583 * n5 / 161280 - 108847 * n6 / 3991680,
            20648693 * n6 / 638668800};
  return s;
}

const Series& series() {
  static const Series s = make_series();
  return s;
}

// tan of the conformal latitude from tan of the geodetic latitude.
double conformal_tan(double tau, const Series& s) {
  const double sigma = std::sinh(s.e * std::atanh(s.e * tau / std::hypot(1.0, tau)));
  return tau * std::hypot(1.0, sigma) - sigma * std::hypot(1.0, tau);
}

}  // namespace

double utm_central_meridian(int zone) { return -183.0 + 6.0 * zone; }

EastNorth utm_forward(int zone, bool south, LonLat p) {
  const Series& s = series();
  double dlon = p.lon - utm_central_meridian(zone);
  dlon = std::remainder(dlon, 360.0);  // a zone-60 grid reaching past 180 degrees
  const double lam = dlon * kDeg;
  const double tau = std::tan(p.lat * kDeg);
  const double taup = conformal_tan(tau, s);
  const double xip = std::atan2(taup, std::cos(lam));
  const double etap = std::asinh(std::sin(lam) / std::hypot(taup, std::cos(lam)));
  double xi = xip, eta = etap;
  for (int j = 1; j <= 6; ++j) {
    xi += s.alpha[j - 1] * std::sin(2 * j * xip) * std::cosh(2 * j * etap);
    eta += s.alpha[j - 1] * std::cos(2 * j * xip) * std::sinh(2 * j * etap);
  }
  return {kFalseEasting + s.scale * eta, s.scale * xi + (south ? kFalseNorthingSouth : 0.0)};
}

LonLat utm_inverse(int zone, bool south, EastNorth p) {
  const Series& s = series();
  const double xi = (p.n - (south ? kFalseNorthingSouth : 0.0)) / s.scale;
  const double eta = (p.e - kFalseEasting) / s.scale;
  double xip = xi, etap = eta;
  for (int j = 1; j <= 6; ++j) {
    xip -= s.beta[j - 1] * std::sin(2 * j * xi) * std::cosh(2 * j * eta);
    etap -= s.beta[j - 1] * std::cos(2 * j * xi) * std::sinh(2 * j * eta);
  }
  const double taup = std::sin(xip) / std::hypot(std::sinh(etap), std::cos(xip));
  const double lam = std::atan2(std::sinh(etap), std::cos(xip));
  // Newton's method for the geodetic tan(lat) whose conformal tan is taup.
  double tau = taup;
  for (int i = 0; i < 5; ++i) {
    const double tp = conformal_tan(tau, s);
    const double dtau = (taup - tp) / std::hypot(1.0, tp) * (1 + (1 - s.e2) * tau * tau) /
                        ((1 - s.e2) * std::hypot(1.0, tau));
    tau += dtau;
    if (std::abs(dtau) < 1e-14 * std::max(1.0, std::abs(tau))) break;
  }
  return {utm_central_meridian(zone) + lam / kDeg, std::atan(tau) / kDeg};
}

}  // namespace eo
