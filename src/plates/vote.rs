//! A track's plate, by vote over its readings: each distinct reading scores the sum of its
//! confidences, so a plate read three times well beats one read once, however sure that once.

use std::sync::Arc;

use super::Reading;
use crate::track::{Plate, PlatePicture};

#[derive(Debug, Default)]
pub struct Votes {
    tally: Vec<Tally>,
}

/// One distinct text's votes.
#[derive(Debug)]
struct Tally {
    text: String,
    reads: u32,
    /// The readings' confidences, summed.
    sum: f32,
    /// The surest reading's confidence and picture.
    best: (f32, PlatePicture),
}

impl Votes {
    pub fn add(&mut self, reading: &Reading) {
        match self.tally.iter_mut().find(|t| t.text == reading.text) {
            Some(tally) => {
                tally.reads += 1;
                tally.sum += reading.confidence;
                if reading.confidence > tally.best.0 {
                    tally.best = (reading.confidence, reading.picture.clone());
                }
            }
            None => self.tally.push(Tally {
                text: reading.text.clone(),
                reads: 1,
                sum: reading.confidence,
                best: (reading.confidence, reading.picture.clone()),
            }),
        }
    }

    /// The winning text, its mean confidence, how many reads it had and its best picture.
    pub fn winner(&self) -> Option<Plate> {
        let tally = self.tally.iter().max_by(|a, b| a.sum.total_cmp(&b.sum))?;
        Some(Plate {
            text: Arc::from(tally.text.as_str()),
            confidence: tally.sum / tally.reads as f32,
            reads: tally.reads,
            picture: Some(tally.best.1.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(text: &str, confidence: f32) -> Reading {
        let region = crate::geometry::BBox { x: 0.4, y: 0.8, w: 0.2, h: 0.05 };
        let picture = PlatePicture(Arc::new(crate::frame::Frame {
            width: 2,
            height: 1,
            data: vec![0; 6].into(),
            stream_time_s: 0.0,
            captured_at: std::time::SystemTime::UNIX_EPOCH,
            metadata: Vec::new(),
        }));
        Reading { text: text.into(), confidence, region, picture }
    }

    #[test]
    fn one_noisy_frame_does_not_win_over_three_good_ones() {
        let mut votes = Votes::default();
        let readings = [
            reading("皖ACJ218", 0.8),
            reading("皖ACJ213", 0.99),
            reading("皖ACJ218", 0.81),
            reading("皖ACJ218", 0.79),
        ];
        for r in &readings {
            votes.add(r);
        }
        let plate = votes.winner().unwrap();
        assert_eq!(&*plate.text, "皖ACJ218");
        assert_eq!(plate.reads, 3);
        assert!((plate.confidence - 0.8).abs() < 1e-6);
        // Its picture is its surest reading's.
        assert_eq!(plate.picture, Some(readings[2].picture.clone()));
    }

    #[test]
    fn no_reading_no_plate() {
        assert_eq!(Votes::default().winner(), None);
    }
}
