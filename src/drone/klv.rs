//! MISB ST 0601 KLV: the UAS Datalink Local Set a drone's encoder muxes beside its video in
//! MPEG-TS (`meta/x-klv` out of tsdemux).
//!
//! A packet is the local set's 16-byte Universal Label, a BER length, then local items (tag as
//! BER-OID, BER length, value), the last one the checksum (tag 1): the 16-bit sum of every byte
//! before its value, even bytes as the high byte. A packet with a wrong or missing checksum, a
//! length reaching past the data, or a known tag of the wrong size is rejected whole: telemetry
//! that may be corrupt must not place incidents on the ground. Unknown tags are skipped. Values
//! are scaled as ST 0601 defines them; a signed value's reserved "out of range" code reads as
//! absent.

use std::fmt;

/// The Universal Label of the UAS Datalink Local Set.
pub const UAS_LOCAL_SET_KEY: [u8; 16] = [
    0x06, 0x0E, 0x2B, 0x34, 0x02, 0x0B, 0x01, 0x01, 0x0E, 0x01, 0x03, 0x01, 0x01, 0x00, 0x00, 0x00,
];
/// The first bytes every SMPTE Universal Label shares: other KLV sets in the same stream.
const UL_PREFIX: [u8; 4] = [0x06, 0x0E, 0x2B, 0x34];
const CHECKSUM_TAG: u32 = 1;

/// What one packet says; tags the packet did not carry are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UasSample {
    /// Tag 2: microseconds since 1970-01-01 UTC.
    pub timestamp_us: Option<u64>,
    /// Tag 5: degrees clockwise from true north, 0..360.
    pub platform_heading_deg: Option<f64>,
    /// Tag 6 (±20°), or tag 90 (±90°) when present: nose up positive.
    pub platform_pitch_deg: Option<f64>,
    /// Tag 7 (±50°), or tag 91 (±180°) when present: right wing down positive.
    pub platform_roll_deg: Option<f64>,
    /// Tags 13 and 14: WGS84 degrees.
    pub sensor_latitude_deg: Option<f64>,
    pub sensor_longitude_deg: Option<f64>,
    /// Tag 15: metres above mean sea level, -900..19000.
    pub sensor_altitude_m: Option<f64>,
    /// Tags 16 and 17: the image's full horizontal and vertical field of view, degrees.
    pub sensor_hfov_deg: Option<f64>,
    pub sensor_vfov_deg: Option<f64>,
    /// Tags 18, 19 and 20: the sensor relative to the platform, degrees. Azimuth clockwise from
    /// the nose, elevation negative down, roll clockwise looking along the line of sight.
    pub sensor_relative_azimuth_deg: Option<f64>,
    pub sensor_relative_elevation_deg: Option<f64>,
    pub sensor_relative_roll_deg: Option<f64>,
    /// Tag 21: metres from the sensor to the frame centre.
    pub slant_range_m: Option<f64>,
    /// Tags 23, 24 and 25: where the image centre is on the ground, by the sensor's own
    /// reckoning (WGS84 degrees, metres above mean sea level).
    pub frame_centre_latitude_deg: Option<f64>,
    pub frame_centre_longitude_deg: Option<f64>,
    pub frame_centre_elevation_m: Option<f64>,
    /// Tag 65: the ST 0601 version the packet follows.
    pub version: Option<u8>,
}

impl UasSample {
    /// The first value outside what a flying camera can report, named with its range; `None`
    /// when every value given is plausible. An MQTT bridge or a broken encoder can send
    /// latitude 1000, and a position computed from it must not reach an incident.
    pub fn implausible(&self) -> Option<String> {
        let ranges: [(&str, Option<f64>, f64, f64); 15] = [
            ("latitude", self.sensor_latitude_deg, -90.0, 90.0),
            ("longitude", self.sensor_longitude_deg, -180.0, 180.0),
            ("altitude", self.sensor_altitude_m, -900.0, 19_000.0),
            ("heading", self.platform_heading_deg, -360.0, 360.0),
            ("pitch", self.platform_pitch_deg, -180.0, 180.0),
            ("roll", self.platform_roll_deg, -180.0, 180.0),
            ("horizontal field of view", self.sensor_hfov_deg, 0.0, 180.0),
            ("vertical field of view", self.sensor_vfov_deg, 0.0, 180.0),
            ("gimbal yaw", self.sensor_relative_azimuth_deg, -360.0, 360.0),
            ("gimbal pitch", self.sensor_relative_elevation_deg, -180.0, 180.0),
            ("gimbal roll", self.sensor_relative_roll_deg, -180.0, 180.0),
            ("slant range", self.slant_range_m, 0.0, 5_000_000.0),
            ("frame centre latitude", self.frame_centre_latitude_deg, -90.0, 90.0),
            ("frame centre longitude", self.frame_centre_longitude_deg, -180.0, 180.0),
            ("frame centre elevation", self.frame_centre_elevation_m, -900.0, 19_000.0),
        ];
        ranges.iter().find_map(|(name, value, low, high)| {
            let v = (*value)?;
            (!(v.is_finite() && (*low..=*high).contains(&v)))
                .then(|| format!("{name} {v} is outside {low}..{high}"))
        })
    }
}

/// Why a packet was rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum KlvError {
    /// The data ends inside the packet.
    Truncated,
    /// A Universal Label other than the UAS Datalink Local Set, or none at all.
    NotUasLocalSet,
    /// A BER length or tag longer than this parser accepts, or BER's indefinite form.
    BadBer,
    NoChecksum,
    BadChecksum {
        computed: u16,
        carried: u16,
    },
    /// A known tag whose value has another size than ST 0601 gives it.
    BadLength {
        tag: u32,
        length: usize,
    },
}

impl fmt::Display for KlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KlvError::Truncated => write!(f, "truncated KLV packet"),
            KlvError::NotUasLocalSet => write!(f, "not a MISB ST 0601 UAS Datalink Local Set"),
            KlvError::BadBer => write!(f, "unsupported BER length or tag"),
            KlvError::NoChecksum => write!(f, "no checksum item"),
            KlvError::BadChecksum { computed, carried } => {
                write!(f, "checksum mismatch: computed {computed:#06x}, packet has {carried:#06x}")
            }
            KlvError::BadLength { tag, length } => {
                write!(f, "tag {tag} has {length} bytes, not the size ST 0601 gives it")
            }
        }
    }
}

/// Every UAS Datalink Local Set in a buffer, in order. Other SMPTE KLV sets are skipped; the
/// first unreadable packet ends the buffer (its length cannot be trusted to find the next).
pub fn parse_buffer(data: &[u8]) -> Vec<Result<UasSample, KlvError>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() >= 16 && rest[..4] == UL_PREFIX && rest[..16] != UAS_LOCAL_SET_KEY {
            match ber_length(&rest[16..]) {
                Ok((length, used)) if rest.len() - 16 - used >= length => {
                    rest = &rest[16 + used + length..];
                    continue;
                }
                Ok(_) => out.push(Err(KlvError::Truncated)),
                Err(e) => out.push(Err(e)),
            }
            break;
        }
        match parse_packet(rest) {
            Ok((sample, used)) => {
                out.push(Ok(sample));
                rest = &rest[used..];
            }
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    out
}

/// One UAS Datalink Local Set at the start of `data`, and how many bytes it took.
pub fn parse_packet(data: &[u8]) -> Result<(UasSample, usize), KlvError> {
    if data.len() < 16 {
        return Err(if UAS_LOCAL_SET_KEY.starts_with(data) {
            KlvError::Truncated
        } else {
            KlvError::NotUasLocalSet
        });
    }
    if data[..16] != UAS_LOCAL_SET_KEY {
        return Err(KlvError::NotUasLocalSet);
    }
    let (length, used) = ber_length(&data[16..])?;
    let start = 16 + used;
    let end = start.checked_add(length).filter(|e| *e <= data.len()).ok_or(KlvError::Truncated)?;
    let mut sample = UasSample::default();
    let mut full_pitch = None;
    let mut full_roll = None;
    let mut at = start;
    let mut checked = false;
    while at < end {
        let (tag, tag_len) = ber_oid(&data[at..end])?;
        let (len, len_len) = ber_length(&data[at + tag_len..end])?;
        let value_at = at + tag_len + len_len;
        let value_end =
            value_at.checked_add(len).filter(|e| *e <= end).ok_or(KlvError::Truncated)?;
        let value = &data[value_at..value_end];
        if tag == CHECKSUM_TAG {
            // The checksum closes the set: it covers everything before its own value.
            if len != 2 || value_at + 2 != end {
                return Err(KlvError::BadLength { tag, length: len });
            }
            let computed = checksum(&data[..value_at]);
            let carried = u16::from_be_bytes([value[0], value[1]]);
            if computed != carried {
                return Err(KlvError::BadChecksum { computed, carried });
            }
            checked = true;
        } else {
            let bad = || KlvError::BadLength { tag, length: len };
            match tag {
                2 => sample.timestamp_us = Some(u64::from_be_bytes(fixed(value).ok_or_else(bad)?)),
                5 => sample.platform_heading_deg = Some(unsigned(value, 2, 360.0).ok_or_else(bad)?),
                6 => sample.platform_pitch_deg = signed(value, 2, 20.0).ok_or_else(bad)?,
                7 => sample.platform_roll_deg = signed(value, 2, 50.0).ok_or_else(bad)?,
                13 => sample.sensor_latitude_deg = signed(value, 4, 90.0).ok_or_else(bad)?,
                14 => sample.sensor_longitude_deg = signed(value, 4, 180.0).ok_or_else(bad)?,
                15 => sample.sensor_altitude_m = Some(altitude(value).ok_or_else(bad)?),
                16 => sample.sensor_hfov_deg = Some(unsigned(value, 2, 180.0).ok_or_else(bad)?),
                17 => sample.sensor_vfov_deg = Some(unsigned(value, 2, 180.0).ok_or_else(bad)?),
                18 => {
                    sample.sensor_relative_azimuth_deg =
                        Some(unsigned(value, 4, 360.0).ok_or_else(bad)?)
                }
                19 => {
                    sample.sensor_relative_elevation_deg =
                        signed(value, 4, 180.0).ok_or_else(bad)?
                }
                20 => {
                    sample.sensor_relative_roll_deg =
                        Some(unsigned(value, 4, 360.0).ok_or_else(bad)?)
                }
                21 => sample.slant_range_m = Some(unsigned(value, 4, 5e6).ok_or_else(bad)?),
                23 => sample.frame_centre_latitude_deg = signed(value, 4, 90.0).ok_or_else(bad)?,
                24 => {
                    sample.frame_centre_longitude_deg = signed(value, 4, 180.0).ok_or_else(bad)?
                }
                25 => sample.frame_centre_elevation_m = Some(altitude(value).ok_or_else(bad)?),
                65 => sample.version = Some(u8::from_be_bytes(fixed(value).ok_or_else(bad)?)),
                90 => full_pitch = signed(value, 4, 90.0).ok_or_else(bad)?,
                91 => full_roll = signed(value, 4, 180.0).ok_or_else(bad)?,
                _ => {}
            }
        }
        at = value_end;
    }
    if !checked {
        return Err(KlvError::NoChecksum);
    }
    // The full-range angles supersede the short ones when a platform flies beyond them.
    sample.platform_pitch_deg = full_pitch.or(sample.platform_pitch_deg);
    sample.platform_roll_deg = full_roll.or(sample.platform_roll_deg);
    Ok((sample, end))
}

/// ST 0601's 16-bit checksum: a running sum, bytes at even offsets as the high byte.
pub fn checksum(data: &[u8]) -> u16 {
    data.iter().enumerate().fold(0u16, |sum, (i, b)| {
        sum.wrapping_add(if i % 2 == 0 { u16::from(*b) << 8 } else { u16::from(*b) })
    })
}

/// A BER length (short form below 128, long form up to 8 bytes) and the bytes it took.
fn ber_length(data: &[u8]) -> Result<(usize, usize), KlvError> {
    let first = *data.first().ok_or(KlvError::Truncated)?;
    if first < 0x80 {
        return Ok((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 8 {
        return Err(KlvError::BadBer);
    }
    let bytes = data.get(1..1 + n).ok_or(KlvError::Truncated)?;
    let length = bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    Ok((usize::try_from(length).map_err(|_| KlvError::BadBer)?, 1 + n))
}

/// A BER-OID tag (7 bits a byte, high bit set on all but the last; at most 4 bytes).
fn ber_oid(data: &[u8]) -> Result<(u32, usize), KlvError> {
    let mut tag = 0u32;
    for (i, b) in data.iter().enumerate().take(4) {
        tag = (tag << 7) | u32::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Ok((tag, i + 1));
        }
    }
    Err(if data.len() < 4 { KlvError::Truncated } else { KlvError::BadBer })
}

fn fixed<const N: usize>(value: &[u8]) -> Option<[u8; N]> {
    value.try_into().ok()
}

/// An unsigned integer of `size` bytes mapped linearly onto `0..=max`.
fn unsigned(value: &[u8], size: usize, max: f64) -> Option<f64> {
    (value.len() == size).then(|| {
        let raw = value.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
        raw as f64 * max / full_scale(size)
    })
}

/// A two's-complement integer of `size` bytes mapped onto `-range..=range`; `Some(None)` for
/// the reserved most negative value ("out of range").
fn signed(value: &[u8], size: usize, range: f64) -> Option<Option<f64>> {
    if value.len() != size {
        return None;
    }
    let raw = value.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    let shift = 64 - 8 * size as u32;
    let raw = ((raw << shift) as i64) >> shift;
    let reserved = -(1i64 << (8 * size - 1));
    Some((raw != reserved).then(|| raw as f64 * 2.0 * range / (full_scale(size) - 1.0)))
}

/// Tags 15 and 25: two bytes mapped onto -900..19000 m.
fn altitude(value: &[u8]) -> Option<f64> {
    unsigned(value, 2, 19_900.0).map(|a| a - 900.0)
}

/// The largest unsigned value of `size` bytes, as ST 0601's scale factors use it.
fn full_scale(size: usize) -> f64 {
    2f64.powi(8 * size as i32) - 1.0
}

/// How [`encode`] writes a value.
enum Scale {
    /// Plus an offset, onto `0..=max` in `size` bytes.
    Unsigned(f64, usize, f64),
    /// Onto `-range..=range` in `size` bytes.
    Signed(usize, f64),
}

impl Scale {
    fn encode(&self, v: f64) -> Vec<u8> {
        let (raw, size) = match *self {
            Scale::Unsigned(offset, size, max) => {
                let top = full_scale(size);
                (((v + offset) / max * top).round().clamp(0.0, top) as i64, size)
            }
            Scale::Signed(size, range) => {
                let half = (full_scale(size) - 1.0) / 2.0;
                ((v / range * half).round().clamp(-half, half) as i64, size)
            }
        };
        raw.to_be_bytes()[8 - size..].to_vec()
    }
}

/// A packet carrying `sample`'s values, checksum included: what a drone's encoder sends. For
/// tests and tools that stand in for a drone.
pub fn encode(sample: &UasSample) -> Vec<u8> {
    let mut items = Vec::new();
    let mut item = |tag: u8, value: &[u8]| {
        items.push(tag);
        items.push(value.len() as u8);
        items.extend_from_slice(value);
    };
    if let Some(t) = sample.timestamp_us {
        item(2, &t.to_be_bytes());
    }
    // Unsigned (offset, size, max) or signed (size, range) encodings, as ST 0601 gives them.
    use Scale::{Signed as I, Unsigned as U};
    let fields = [
        (5, sample.platform_heading_deg, U(0.0, 2, 360.0)),
        (6, sample.platform_pitch_deg.filter(|p| p.abs() <= 20.0), I(2, 20.0)),
        (7, sample.platform_roll_deg.filter(|r| r.abs() <= 50.0), I(2, 50.0)),
        (13, sample.sensor_latitude_deg, I(4, 90.0)),
        (14, sample.sensor_longitude_deg, I(4, 180.0)),
        (15, sample.sensor_altitude_m, U(900.0, 2, 19_900.0)),
        (16, sample.sensor_hfov_deg, U(0.0, 2, 180.0)),
        (17, sample.sensor_vfov_deg, U(0.0, 2, 180.0)),
        (18, sample.sensor_relative_azimuth_deg, U(0.0, 4, 360.0)),
        (19, sample.sensor_relative_elevation_deg, I(4, 180.0)),
        (20, sample.sensor_relative_roll_deg, U(0.0, 4, 360.0)),
        (21, sample.slant_range_m, U(0.0, 4, 5e6)),
        (23, sample.frame_centre_latitude_deg, I(4, 90.0)),
        (24, sample.frame_centre_longitude_deg, I(4, 180.0)),
        (25, sample.frame_centre_elevation_m, U(900.0, 2, 19_900.0)),
        // Angles beyond the short tags' range go in the full-range ones.
        (90, sample.platform_pitch_deg.filter(|p| p.abs() > 20.0), I(4, 90.0)),
        (91, sample.platform_roll_deg.filter(|r| r.abs() > 50.0), I(4, 180.0)),
    ];
    for (tag, value, scale) in fields {
        if let Some(v) = value {
            item(tag, &scale.encode(v));
        }
    }
    if let Some(v) = sample.version {
        item(65, &[v]);
    }
    items.extend_from_slice(&[CHECKSUM_TAG as u8, 2]);
    let mut packet = UAS_LOCAL_SET_KEY.to_vec();
    let length = items.len() + 2;
    if length < 128 {
        packet.push(length as u8);
    } else {
        packet.extend_from_slice(&[0x82, (length >> 8) as u8, length as u8]);
    }
    packet.extend_from_slice(&items);
    let sum = checksum(&packet);
    packet.extend_from_slice(&sum.to_be_bytes());
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet of hand-written items: the key, a BER length in the form `long_length` asks
    /// for, the items, and the checksum over them.
    fn packet(items: &[u8], long_length: bool) -> Vec<u8> {
        let mut p = UAS_LOCAL_SET_KEY.to_vec();
        let length = items.len() + 4;
        if long_length {
            p.extend_from_slice(&[0x81, length as u8]);
        } else {
            p.push(length as u8);
        }
        p.extend_from_slice(items);
        p.extend_from_slice(&[0x01, 0x02]);
        let sum = checksum(&p);
        p.extend_from_slice(&sum.to_be_bytes());
        p
    }

    fn near(actual: Option<f64>, expected: f64, tolerance: f64) {
        let actual = actual.expect("value present");
        assert!((actual - expected).abs() <= tolerance, "{actual} vs {expected}");
    }

    /// The per-tag examples of MISB ST 0601 (value in the standard, its encoding beside it).
    #[test]
    fn every_implemented_tag_decodes_the_standards_examples() {
        let items: Vec<u8> = [
            &[0x02, 0x08, 0x00, 0x04, 0x59, 0xF4, 0xA6, 0xAA, 0x4A, 0xA8][..],
            &[0x05, 0x02, 0x71, 0xC2],
            &[0x06, 0x02, 0xFD, 0x3D],
            &[0x07, 0x02, 0x08, 0xB8],
            &[0x0D, 0x04, 0x55, 0x95, 0xB6, 0x6D],
            &[0x0E, 0x04, 0x5B, 0x53, 0x60, 0xC4],
            &[0x0F, 0x02, 0xC2, 0x21],
            &[0x10, 0x02, 0xCD, 0x9C],
            &[0x11, 0x02, 0xD9, 0x17],
            &[0x12, 0x04, 0x72, 0x4A, 0x0A, 0x20],
            &[0x13, 0x04, 0x87, 0xF8, 0x4B, 0x86],
            &[0x14, 0x04, 0x7D, 0xC5, 0x5E, 0xCE],
            &[0x15, 0x04, 0x03, 0x83, 0x09, 0x26],
            &[0x17, 0x04, 0xF1, 0x01, 0xA2, 0x29],
            &[0x18, 0x04, 0x14, 0xBC, 0x08, 0x2B],
            &[0x19, 0x02, 0x34, 0xF3],
            &[0x41, 0x01, 0x0D],
        ]
        .concat();
        let (s, used) = parse_packet(&packet(&items, false)).unwrap();
        assert_eq!(used, 16 + 1 + items.len() + 4);
        assert_eq!(s.timestamp_us, Some(1_224_807_209_913_000));
        near(s.platform_heading_deg, 159.9744, 1e-4);
        near(s.platform_pitch_deg, -0.4315251, 1e-5);
        near(s.platform_roll_deg, 3.405814, 1e-4);
        near(s.sensor_latitude_deg, 60.176_822_966, 1e-8);
        near(s.sensor_longitude_deg, 128.426_759_042, 1e-8);
        near(s.sensor_altitude_m, 14_190.72, 0.01);
        near(s.sensor_hfov_deg, 144.5713, 1e-4);
        near(s.sensor_vfov_deg, 152.6436, 1e-4);
        near(s.sensor_relative_azimuth_deg, 160.719_211_5, 1e-7);
        near(s.sensor_relative_elevation_deg, -168.792_324_8, 1e-7);
        near(s.sensor_relative_roll_deg, 176.865_430_4, 1e-5);
        near(s.slant_range_m, 68_590.98, 0.01);
        near(s.frame_centre_latitude_deg, -10.542_388_633, 1e-8);
        near(s.frame_centre_longitude_deg, 29.157_890_123, 1e-8);
        near(s.frame_centre_elevation_m, 3216.037, 1e-3);
        assert_eq!(s.version, Some(13));
    }

    #[test]
    fn long_form_lengths_and_full_range_angles() {
        // Pitch -45° and roll 120° need tags 90 and 91; both short tags are superseded.
        let items = [
            &[0x06, 0x02, 0x00, 0x10][..],
            &[0x5A, 0x04, 0xC0, 0x00, 0x00, 0x01],
            &[0x5B, 0x84, 0x00, 0x00, 0x00, 0x04, 0x55, 0x55, 0x55, 0x55],
        ]
        .concat();
        let (s, _) = parse_packet(&packet(&items, true)).unwrap();
        near(s.platform_pitch_deg, -45.0, 1e-6);
        near(s.platform_roll_deg, 120.0, 1e-6);
    }

    #[test]
    fn unknown_tags_are_skipped_multi_byte_tags_included() {
        let items = [
            &[0x03, 0x03, b'M', b'Q', b'9'][..],
            &[0x81, 0x10, 0x01, 0xFF], // tag 144, BER-OID in two bytes
            &[0x05, 0x02, 0x80, 0x00],
        ]
        .concat();
        let (s, _) = parse_packet(&packet(&items, false)).unwrap();
        near(s.platform_heading_deg, 180.0, 0.01);
    }

    #[test]
    fn out_of_range_codes_read_as_absent() {
        let items = [&[0x06, 0x02, 0x80, 0x00][..], &[0x0D, 0x04, 0x80, 0, 0, 0]].concat();
        let (s, _) = parse_packet(&packet(&items, false)).unwrap();
        assert_eq!((s.platform_pitch_deg, s.sensor_latitude_deg), (None, None));
    }

    #[test]
    fn a_bad_checksum_is_rejected() {
        let mut p = packet(&[0x05, 0x02, 0x71, 0xC2], false);
        let at = p.len() - 5;
        p[at] ^= 0x01; // one bit of the heading
        assert!(matches!(parse_packet(&p), Err(KlvError::BadChecksum { .. })));
    }

    #[test]
    fn a_packet_without_checksum_or_with_a_wrong_size_is_rejected() {
        let mut p = UAS_LOCAL_SET_KEY.to_vec();
        p.extend_from_slice(&[0x04, 0x05, 0x02, 0x71, 0xC2]);
        assert_eq!(parse_packet(&p), Err(KlvError::NoChecksum));
        let p = packet(&[0x05, 0x03, 0x71, 0xC2, 0x00], false);
        assert_eq!(parse_packet(&p), Err(KlvError::BadLength { tag: 5, length: 3 }));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let whole = encode(&UasSample {
            timestamp_us: Some(1),
            sensor_latitude_deg: Some(31.2),
            sensor_hfov_deg: Some(60.0),
            ..UasSample::default()
        });
        assert!(parse_packet(&whole).is_ok());
        for cut in 0..whole.len() {
            let e = parse_packet(&whole[..cut]).unwrap_err();
            assert_eq!(e, KlvError::Truncated, "cut at {cut}");
        }
    }

    #[test]
    fn encode_round_trips_within_the_encodings_resolution() {
        let sample = UasSample {
            timestamp_us: Some(1_795_000_000_000_000),
            platform_heading_deg: Some(271.5),
            platform_pitch_deg: Some(-3.25),
            platform_roll_deg: Some(1.5),
            sensor_latitude_deg: Some(31.230_416),
            sensor_longitude_deg: Some(121.473_701),
            sensor_altitude_m: Some(152.3),
            sensor_hfov_deg: Some(62.0),
            sensor_vfov_deg: Some(36.5),
            sensor_relative_azimuth_deg: Some(12.0),
            sensor_relative_elevation_deg: Some(-60.0),
            sensor_relative_roll_deg: Some(0.0),
            slant_range_m: Some(140.0),
            frame_centre_latitude_deg: Some(31.2311),
            frame_centre_longitude_deg: Some(121.4732),
            frame_centre_elevation_m: Some(4.0),
            version: Some(17),
        };
        let (back, _) = parse_packet(&encode(&sample)).unwrap();
        assert_eq!(back.timestamp_us, sample.timestamp_us);
        assert_eq!(back.version, sample.version);
        let pairs = [
            (back.platform_heading_deg, sample.platform_heading_deg, 0.01),
            (back.platform_pitch_deg, sample.platform_pitch_deg, 0.001),
            (back.platform_roll_deg, sample.platform_roll_deg, 0.002),
            (back.sensor_latitude_deg, sample.sensor_latitude_deg, 1e-7),
            (back.sensor_longitude_deg, sample.sensor_longitude_deg, 1e-7),
            (back.sensor_altitude_m, sample.sensor_altitude_m, 0.31),
            (back.sensor_hfov_deg, sample.sensor_hfov_deg, 0.003),
            (back.sensor_vfov_deg, sample.sensor_vfov_deg, 0.003),
            (back.sensor_relative_azimuth_deg, sample.sensor_relative_azimuth_deg, 1e-7),
            (back.sensor_relative_elevation_deg, sample.sensor_relative_elevation_deg, 1e-7),
            (back.sensor_relative_roll_deg, sample.sensor_relative_roll_deg, 1e-7),
            (back.slant_range_m, sample.slant_range_m, 0.002),
            (back.frame_centre_latitude_deg, sample.frame_centre_latitude_deg, 1e-7),
            (back.frame_centre_longitude_deg, sample.frame_centre_longitude_deg, 1e-7),
            (back.frame_centre_elevation_m, sample.frame_centre_elevation_m, 0.31),
        ];
        for (got, want, tolerance) in pairs {
            near(got, want.unwrap(), tolerance);
        }
    }

    #[test]
    fn a_buffer_may_hold_several_packets_and_other_sets() {
        let one = encode(&UasSample { platform_heading_deg: Some(10.0), ..Default::default() });
        let two = encode(&UasSample { platform_heading_deg: Some(20.0), ..Default::default() });
        let mut other = UL_PREFIX.to_vec();
        other.extend_from_slice(&[0x02, 0x01, 0x01, 0x01, 0x0E, 0x01, 0x03, 0x03, 0x02, 0, 0, 0]);
        other.extend_from_slice(&[0x03, 0xAA, 0xBB, 0xCC]);
        let buffer = [one, other, two].concat();
        let headings: Vec<_> = parse_buffer(&buffer)
            .into_iter()
            .map(|s| s.unwrap().platform_heading_deg.unwrap().round())
            .collect();
        assert_eq!(headings, [10.0, 20.0]);
        assert_eq!(parse_buffer(b"not klv"), [Err(KlvError::NotUasLocalSet)]);
    }
}
