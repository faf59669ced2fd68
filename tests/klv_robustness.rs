//! The KLV parser against damaged input, on stable Rust (the fuzz target in `fuzz/` needs
//! nightly): many packets made from random telemetry, then truncated, bit-flipped, spliced
//! and replaced by noise, from a fixed seed so a failure repeats. The parser must never
//! panic, must reject every single-bit error, and must read every intact packet back.

use cityeye::drone::klv::{self, KlvError, UasSample};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn maybe(&mut self, lo: f64, hi: f64) -> Option<f64> {
        let present = !self.next().is_multiple_of(4);
        present.then(|| lo + (self.next() as f64 / u64::MAX as f64) * (hi - lo))
    }
}

fn random_sample(rng: &mut Rng) -> UasSample {
    UasSample {
        timestamp_us: rng.next().is_multiple_of(2).then(|| rng.next() >> 12),
        platform_heading_deg: rng.maybe(0.0, 360.0),
        platform_pitch_deg: rng.maybe(-89.0, 89.0),
        platform_roll_deg: rng.maybe(-179.0, 179.0),
        sensor_latitude_deg: rng.maybe(-89.0, 89.0),
        sensor_longitude_deg: rng.maybe(-179.0, 179.0),
        sensor_altitude_m: rng.maybe(-900.0, 19_000.0),
        sensor_hfov_deg: rng.maybe(0.0, 180.0),
        sensor_vfov_deg: rng.maybe(0.0, 180.0),
        sensor_relative_azimuth_deg: rng.maybe(0.0, 360.0),
        sensor_relative_elevation_deg: rng.maybe(-179.0, 179.0),
        sensor_relative_roll_deg: rng.maybe(0.0, 360.0),
        slant_range_m: rng.maybe(0.0, 5e6),
        frame_centre_latitude_deg: rng.maybe(-89.0, 89.0),
        frame_centre_longitude_deg: rng.maybe(-179.0, 179.0),
        frame_centre_elevation_m: rng.maybe(-900.0, 19_000.0),
        version: rng.next().is_multiple_of(2).then(|| (rng.next() % 20) as u8),
    }
}

const PACKETS: usize = 5_000;

#[test]
fn intact_packets_parse_and_every_single_bit_error_is_rejected() {
    let mut rng = Rng(0x5EED_0601);
    let mut flips = 0;
    for _ in 0..PACKETS {
        let sample = random_sample(&mut rng);
        let packet = klv::encode(&sample);
        let (back, used) = klv::parse_packet(&packet).expect("an intact packet parses");
        assert_eq!(used, packet.len());
        assert_eq!((back.timestamp_us, back.version), (sample.timestamp_us, sample.version));
        assert_eq!(back.sensor_latitude_deg.is_some(), sample.sensor_latitude_deg.is_some());
        for _ in 0..8 {
            let mut damaged = packet.clone();
            let bit = rng.below(damaged.len() * 8);
            damaged[bit / 8] ^= 1 << (bit % 8);
            let result = klv::parse_packet(&damaged);
            assert!(result.is_err(), "bit {bit} flipped went unnoticed: {result:?}");
            flips += 1;
        }
    }
    assert_eq!(flips, PACKETS * 8);
}

#[test]
fn a_wrong_checksum_is_rejected_as_such() {
    let mut rng = Rng(42);
    for _ in 0..1_000 {
        let mut packet = klv::encode(&random_sample(&mut rng));
        let last = packet.len() - 1;
        packet[last] = packet[last].wrapping_add(1 + rng.below(255) as u8);
        assert!(matches!(klv::parse_packet(&packet), Err(KlvError::BadChecksum { .. })));
    }
}

#[test]
fn truncated_spliced_and_random_input_never_panics() {
    let mut rng = Rng(0xC17E_E7E5);
    let mut rejected = 0usize;
    for round in 0..PACKETS {
        let packet = klv::encode(&random_sample(&mut rng));
        let cut = rng.below(packet.len());
        assert!(klv::parse_packet(&packet[..cut]).is_err(), "a packet cut at {cut} parsed");
        rejected += 1;
        // A buffer of several packets, one of them damaged in one of several ways.
        let other = klv::encode(&random_sample(&mut rng));
        let mut buffer = [packet.clone(), other].concat();
        match round % 4 {
            0 => buffer.truncate(rng.below(buffer.len())),
            1 => {
                let at = rng.below(buffer.len());
                buffer.insert(at, rng.next() as u8);
            }
            2 => {
                let at = rng.below(buffer.len());
                buffer.remove(at);
            }
            _ => {
                // The packet's own length byte made to claim more or less than there is.
                buffer[16] = rng.next() as u8;
            }
        }
        let parsed = klv::parse_buffer(&buffer);
        assert!(parsed.len() <= 2, "two packets cannot read as more");
        rejected += parsed.iter().filter(|p| p.is_err()).count();
        let noise: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
        let _ = klv::parse_buffer(&noise);
        // Noise behind a valid key and length: the checksum still stands guard.
        let mut keyed = klv::UAS_LOCAL_SET_KEY.to_vec();
        keyed.push(noise.len().min(127) as u8);
        keyed.extend_from_slice(&noise);
        if let Ok((sample, _)) = klv::parse_packet(&keyed) {
            // One random 16-bit checksum in 65536 matches; the values must still be sane.
            assert!(sample.sensor_latitude_deg.is_none_or(|l| l.abs() <= 90.0));
        }
    }
    assert!(rejected >= PACKETS, "{rejected}");
}
