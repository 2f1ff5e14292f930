//! Distances on the Earth's surface, for "near me": the great-circle distance
//! between two points, and the latitude/longitude box around a point that the
//! database can filter on before the exact distance is computed here.

/// Mean radius of the Earth, in metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Metres along a meridian per degree of latitude (near enough everywhere).
const METRES_PER_DEGREE: f64 = 111_320.0;

/// A place in decimal degrees, within range: parsed, never built unchecked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    lat: f64,
    lng: f64,
}

/// Why a `lat`/`lng` pair was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPoint {
    /// One of the two was given without the other.
    Incomplete,
    /// Not a finite decimal number.
    NotANumber,
    /// Latitude outside −90…90 or longitude outside −180…180.
    OutOfRange,
}

impl Point {
    /// A point from numbers; `None` outside the valid ranges.
    pub fn new(lat: f64, lng: f64) -> Option<Point> {
        let ok = lat.is_finite()
            && lng.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lng);
        ok.then_some(Point { lat, lng })
    }

    /// The `lat` and `lng` query parameters: both absent is no point, both
    /// present must be valid degrees.
    pub fn parse(lat: Option<&str>, lng: Option<&str>) -> Result<Option<Point>, BadPoint> {
        let lat = lat.map(str::trim).filter(|s| !s.is_empty());
        let lng = lng.map(str::trim).filter(|s| !s.is_empty());
        let (lat, lng) = match (lat, lng) {
            (None, None) => return Ok(None),
            (Some(lat), Some(lng)) => (lat, lng),
            _ => return Err(BadPoint::Incomplete),
        };
        // `f64::from_str` also reads "inf" and "NaN"; only decimals are places.
        let number = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
                .then(|| s.parse::<f64>().ok())
                .flatten()
                .ok_or(BadPoint::NotANumber)
        };
        let (lat, lng) = (number(lat)?, number(lng)?);
        Point::new(lat, lng).map(Some).ok_or(BadPoint::OutOfRange)
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lng(self) -> f64 {
        self.lng
    }
}

/// Great-circle distance in metres (haversine formula).
pub fn distance_m(a: Point, b: Point) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = (b.lat - a.lat).to_radians();
    let dlng = (b.lng - a.lng).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlng / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// The degrees a database can compare `lat` and `lng` with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min_lat: f64,
    pub max_lat: f64,
    pub min_lng: f64,
    pub max_lng: f64,
}

/// A box holding every point within `radius_m` of `center` (and some corners
/// beyond it, which the exact distance then leaves out). Near a pole, or where
/// the box would cross the 180th meridian, it spans every longitude: wider
/// than needed, never missing a store.
pub fn bounds(center: Point, radius_m: f64) -> Bounds {
    let dlat = radius_m / METRES_PER_DEGREE;
    let cos = center.lat.to_radians().cos();
    let dlng = if cos > 0.01 {
        radius_m / (METRES_PER_DEGREE * cos)
    } else {
        360.0
    };
    let (min_lng, max_lng) = if center.lng - dlng < -180.0 || center.lng + dlng > 180.0 {
        (-180.0, 180.0)
    } else {
        (center.lng - dlng, center.lng + dlng)
    };
    Bounds {
        min_lat: (center.lat - dlat).max(-90.0),
        max_lat: (center.lat + dlat).min(90.0),
        min_lng,
        max_lng,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lng: f64) -> Point {
        Point::new(lat, lng).unwrap()
    }

    #[test]
    fn distances_match_known_ones() {
        let city_hall = p(37.5663, 126.9779);
        let busan_station = p(35.1151, 129.0422);
        let d = distance_m(city_hall, busan_station);
        assert!((320_000.0..330_000.0).contains(&d), "{d}");
        assert!(distance_m(city_hall, city_hall).abs() < 1e-6);
        // One thousandth of a degree of latitude is about 111 m.
        let north = p(37.5673, 126.9779);
        assert!((110.0..112.5).contains(&distance_m(city_hall, north)));
        // Symmetric.
        assert!(
            (distance_m(city_hall, busan_station) - distance_m(busan_station, city_hall)).abs()
                < 1e-6
        );
    }

    #[test]
    fn the_box_holds_every_point_of_the_circle() {
        let center = p(37.5663, 126.9779);
        let b = bounds(center, 5_000.0);
        for step in 0..360 {
            let angle = f64::from(step).to_radians();
            // Walk out to just under 5 km in this direction.
            let lat = center.lat() + 4_999.0 * angle.cos() / METRES_PER_DEGREE;
            let lng = center.lng()
                + 4_999.0 * angle.sin() / (METRES_PER_DEGREE * center.lat().to_radians().cos());
            let q = p(lat, lng);
            assert!(distance_m(center, q) <= 5_000.0 * 1.01);
            assert!((b.min_lat..=b.max_lat).contains(&lat), "{step}");
            assert!((b.min_lng..=b.max_lng).contains(&lng), "{step}");
        }
        let polar = bounds(p(89.99, 10.0), 5_000.0);
        assert_eq!((polar.min_lng, polar.max_lng), (-180.0, 180.0));
        let dateline = bounds(p(0.0, 179.99), 5_000.0);
        assert_eq!((dateline.min_lng, dateline.max_lng), (-180.0, 180.0));
    }

    #[test]
    fn coordinates_are_parsed_or_refused_with_the_reason() {
        assert_eq!(Point::parse(None, None), Ok(None));
        assert_eq!(Point::parse(Some(""), Some(" ")), Ok(None));
        assert_eq!(
            Point::parse(Some("37.56"), Some("126.97")),
            Ok(Some(p(37.56, 126.97)))
        );
        assert_eq!(Point::parse(Some("37.5"), None), Err(BadPoint::Incomplete));
        assert_eq!(Point::parse(None, Some("127")), Err(BadPoint::Incomplete));
        for bad in ["abc", "NaN", "inf", "1,5", "0x10"] {
            assert_eq!(
                Point::parse(Some(bad), Some("127")),
                Err(BadPoint::NotANumber),
                "{bad}"
            );
        }
        assert_eq!(
            Point::parse(Some("91"), Some("127")),
            Err(BadPoint::OutOfRange)
        );
        assert_eq!(
            Point::parse(Some("37"), Some("-180.5")),
            Err(BadPoint::OutOfRange)
        );
        // Too large for a float: infinite, so out of range.
        assert_eq!(
            Point::parse(Some("1e400"), Some("0")),
            Err(BadPoint::OutOfRange)
        );
    }
}
