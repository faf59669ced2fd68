//! Messages that fit the broker: nothing goes out bigger than the largest packet the broker
//! takes. A broker refuses a bigger one (MQTT 5: PUBACK or DISCONNECT 0x95, *packet too large*)
//! or drops it silently (3.1.1), and sending it again after a reconnect only repeats that.
//!
//! A snapshot that does not fit is re-encoded smaller, at a lower JPEG quality and then at a
//! half or a quarter of its size; one that still does not fit, and a clip (MP4 cannot be
//! re-encoded here), is dropped. An incident's JSON is never shrunk: it goes whole, without its
//! inline snapshot if need be, or (when even that does not fit) not at all for now.

use std::borrow::Cow;

use image::imageops::FilterType;
use image::{ImageFormat, RgbImage};

use super::outbox::{Kind, Publication};
use crate::draw;
use crate::wire::IncidentPayload;

/// Room for what a PUBLISH carries besides its topic and payload: the fixed header (5 bytes at
/// most), the topic's length, the packet id and the MQTT 5 properties the node sets (content
/// type, payload format, the incident id as correlation data and user property: about 150).
pub const PACKET_OVERHEAD: usize = 256;

/// What becomes of a publication under a packet limit.
#[derive(Debug)]
pub enum Fit {
    /// It fits: as it was, or with its snapshot re-encoded smaller.
    Send(Publication),
    /// An incident sent without its inline snapshot, which did not fit even re-encoded; the
    /// snapshot's size in bytes.
    SendWithoutSnapshot(Publication, usize),
    /// Evidence that cannot be made to fit: it is not sent.
    DropEvidence,
    /// An incident (or status) that does not fit even without a snapshot.
    TooLarge,
}

/// The bytes `publication` takes on the wire, at most.
pub fn packet_bytes(publication: &Publication) -> usize {
    publication.payload.len() + publication.topic.len() + PACKET_OVERHEAD
}

/// `publication` made to fit packets of at most `limit` bytes.
pub fn fit(mut publication: Publication, limit: usize) -> Fit {
    if packet_bytes(&publication) <= limit {
        return Fit::Send(publication);
    }
    let room = limit.saturating_sub(publication.topic.len() + PACKET_OVERHEAD);
    match publication.kind() {
        Kind::Evidence => match shrink_jpeg(&publication.payload, room) {
            Some(jpeg) => {
                publication.payload = jpeg;
                Fit::Send(publication)
            }
            None => Fit::DropEvidence,
        },
        Kind::Incident => match fit_inline_snapshot(&publication.payload, room) {
            Some((payload, dropped)) => {
                publication.payload = payload;
                match dropped {
                    0 => Fit::Send(publication),
                    bytes => Fit::SendWithoutSnapshot(publication, bytes),
                }
            }
            None => Fit::TooLarge,
        },
        Kind::Status => Fit::TooLarge,
    }
}

/// An incident's JSON with its inline snapshot re-encoded to fit in `room` bytes, or without
/// it; with the dropped snapshot's size (0 when it was kept). None when the JSON does not fit
/// even without a snapshot, or has none to shrink.
fn fit_inline_snapshot(json: &[u8], room: usize) -> Option<(Vec<u8>, usize)> {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut payload: IncidentPayload = serde_json::from_slice(json).ok()?;
    let evidence = payload.evidence.as_mut()?;
    let jpeg = base64.decode(evidence.jpeg_base64.take()?).ok()?;
    let bare = serde_json::to_vec(&payload).ok()?;
    // `"jpeg_base64":"…",` around the text; base64 is 4 bytes for 3.
    let jpeg_room = room.saturating_sub(bare.len() + 20) / 4 * 3;
    if let Some(smaller) = shrink_jpeg(&jpeg, jpeg_room) {
        if let Some(evidence) = payload.evidence.as_mut() {
            evidence.jpeg_base64 = Some(base64.encode(smaller));
        }
        let whole = serde_json::to_vec(&payload).ok()?;
        if whole.len() <= room {
            return Some((whole, 0));
        }
    }
    (bare.len() <= room).then_some((bare, jpeg.len()))
}

/// Quality, then a half and a quarter of the size: tried in turn until the JPEG fits.
const SMALLER: [(u32, u8); 6] = [(1, 70), (1, 50), (1, 30), (2, 50), (2, 30), (4, 30)];

/// `jpeg` re-encoded to at most `max_bytes`, when a lower quality or a smaller size gets it
/// there; None when it does not, or when it is no JPEG (an MP4 clip).
pub fn shrink_jpeg(jpeg: &[u8], max_bytes: usize) -> Option<Vec<u8>> {
    if jpeg.len() <= max_bytes {
        return Some(jpeg.to_vec());
    }
    let image = image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg).ok()?.to_rgb8();
    SMALLER.iter().find_map(|&(divisor, quality)| {
        let smaller = draw::jpeg(&scaled(&image, divisor), quality).ok()?;
        (smaller.len() <= max_bytes).then_some(smaller)
    })
}

/// `image` at 1/`divisor` of its size; itself, not a copy, at full size.
fn scaled(image: &RgbImage, divisor: u32) -> Cow<'_, RgbImage> {
    if divisor == 1 {
        return Cow::Borrowed(image);
    }
    let (width, height) = ((image.width() / divisor).max(1), (image.height() / divisor).max(1));
    Cow::Owned(image::imageops::resize(image, width, height, FilterType::Triangle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A noisy picture: it compresses badly, as a street scene does.
    fn photo(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            let v = (x * 7919 + y * 104_729) ^ (x * y);
            image::Rgb([v as u8, (v >> 8) as u8, (v >> 3) as u8])
        });
        draw::jpeg(&image, 85).unwrap()
    }

    #[test]
    fn a_snapshot_too_large_is_re_encoded_smaller_or_dropped() {
        let jpeg = photo(320, 240);
        let topic = "cityeye/n/c/evidence/x".to_string();
        let whole = Publication::evidence(topic.clone(), jpeg.clone());
        let Fit::Send(same) = fit(whole.clone(), usize::MAX) else { panic!("fits as it is") };
        assert_eq!(same.payload, jpeg);

        let limit = jpeg.len() / 2;
        let Fit::Send(smaller) = fit(whole.clone(), limit) else { panic!("can be shrunk") };
        assert!(packet_bytes(&smaller) <= limit, "{} > {limit}", packet_bytes(&smaller));
        image::load_from_memory(&smaller.payload).expect("still a JPEG");

        assert!(matches!(fit(whole, 600), Fit::DropEvidence));
        let clip = Publication::evidence(format!("{topic}/clip"), vec![0; 10_000]);
        assert!(matches!(fit(clip, 5_000), Fit::DropEvidence), "an MP4 cannot be shrunk");
    }

    #[test]
    fn an_incident_keeps_its_json_and_loses_its_inline_snapshot_last() {
        use base64::Engine;
        let jpeg = photo(320, 240);
        let mut payload: IncidentPayload = serde_json::from_value(serde_json::json!({
            "schema": "cityeye.incident.v1", "id": "01a1ffae-a177-7f4d-85bd-2f1842cdae6a",
            "node": "n", "camera": "c", "algorithm": "illegal_parking",
            "category": "street_order", "name_zh": "机动车违停", "name_en": "Illegal parking",
            "severity": "warning", "state": "start", "detected_at": "2026-11-21T19:56:37.111Z",
            "stream_time_s": 20.0,
            "objects": [{"track_id": 3, "class": "car", "confidence": 0.78,
                         "bbox": [0.95, 0.09, 0.05, 0.07], "dwell_s": 20.0}],
            "evidence": {"topic": "cityeye/n/c/evidence/01a1ffae-a177-7f4d-85bd-2f1842cdae6a",
                         "width": 320, "height": 240},
            "model": {"name": "coco", "sha256": "d39b"}
        }))
        .unwrap();
        let evidence = payload.evidence.as_mut().unwrap();
        evidence.jpeg_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&jpeg));
        let json = serde_json::to_vec(&payload).unwrap();
        let incident = Publication::incident("cityeye/n/c/incident/a".into(), json.clone());

        let limit = json.len() / 2;
        let Fit::Send(smaller) = fit(incident.clone(), limit) else { panic!("can be shrunk") };
        assert!(packet_bytes(&smaller) <= limit);
        let sent: IncidentPayload = serde_json::from_slice(&smaller.payload).unwrap();
        let inline = sent.evidence.unwrap().jpeg_base64.unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(inline).unwrap();
        image::load_from_memory(&decoded).expect("the inline snapshot is still a JPEG");

        // Room for the JSON and some 100 bytes: no JPEG gets that small.
        let mut bare_json = payload.clone();
        bare_json.evidence.as_mut().unwrap().jpeg_base64 = None;
        let just_the_json = packet_bytes(&Publication::incident(
            incident.topic.clone(),
            serde_json::to_vec(&bare_json).unwrap(),
        )) + 100;
        let Fit::SendWithoutSnapshot(bare, dropped) = fit(incident.clone(), just_the_json) else {
            panic!("the JSON alone fits")
        };
        assert_eq!(dropped, jpeg.len());
        let sent: IncidentPayload = serde_json::from_slice(&bare.payload).unwrap();
        assert_eq!(sent.evidence.unwrap().jpeg_base64, None);
        assert_eq!((sent.id, sent.state), (payload.id, payload.state), "the incident goes whole");

        assert!(matches!(fit(incident, just_the_json - 200), Fit::TooLarge));
        let plain = Publication::incident("t".into(), vec![b' '; 5000]);
        assert!(matches!(fit(plain, 4096), Fit::TooLarge));
    }
}
