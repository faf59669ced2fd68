//! The MISB ST 0601 KLV parser on arbitrary bytes: it must never panic, and whatever it
//! accepts must carry a checksum that matches.
#![no_main]

// The parser is plain std Rust; compiled in directly, the target builds without GStreamer,
// ONNX Runtime and the rest of the appliance.
#[path = "../../src/drone/klv.rs"]
#[allow(dead_code)]
mod klv;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for parsed in klv::parse_buffer(data) {
        if let Ok(sample) = parsed {
            // Values read back stay within ST 0601's ranges.
            assert!(sample.sensor_latitude_deg.is_none_or(|v| v.abs() <= 90.0));
            assert!(sample.sensor_longitude_deg.is_none_or(|v| v.abs() <= 180.0));
            assert!(sample.platform_heading_deg.is_none_or(|v| (0.0..=360.0).contains(&v)));
        }
    }
    if let Ok((_, used)) = klv::parse_packet(data) {
        let sum = klv::checksum(&data[..used - 2]);
        assert_eq!(sum.to_be_bytes(), [data[used - 2], data[used - 1]]);
    }
});
