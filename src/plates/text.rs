//! From the recognizer's per-step probabilities to a plate number: greedy CTC decoding, then
//! the plate syntax ([`crate::config::plate_number`]).
//!
//! General-purpose recognizers read the small, dense province character worst (`皖` as `R`, or
//! not at all) while reading the rest of the plate well. Where only that character breaks the
//! syntax, the province is taken from the same time steps, restricted to the province
//! characters, when the recognizer gives it [`PROVINCE_FLOOR`] at least there: the syntax
//! narrows the choice, it never invents a character the model did not see.

use crate::config::{is_province, plate_number};
use crate::infer::ocr::TextSteps;

/// The least probability a province character needs where the greedy reading had none.
const PROVINCE_FLOOR: f32 = 0.1;

/// A character at either end of a reading less likely than this may be the plate's frame or a
/// rivet (read as `[` or `1`): it is dropped when the rest then reads as a plate.
const EDGE_DOUBT: f32 = 0.6;

/// One character of a greedy reading: the dictionary index, its probability, and the time
/// steps it spans.
#[derive(Debug, Clone, Copy)]
struct Emitted {
    class: usize,
    p: f32,
    steps: (usize, usize),
}

/// A plate number as read, and how sure the reading is: its characters' mean probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub text: String,
    pub confidence: f32,
}

/// The dictionary with the classes of its province characters, found once.
pub struct Characters {
    dictionary: Vec<String>,
    /// Model classes (dictionary index + 1) of the province characters.
    provinces: Vec<usize>,
}

impl Characters {
    pub fn new(dictionary: &[String]) -> Characters {
        let is_province = |c: &str| {
            let mut chars = c.chars();
            chars.next().is_some_and(is_province) && chars.next().is_none()
        };
        let provinces =
            (0..dictionary.len()).filter(|&i| is_province(&dictionary[i])).map(|i| i + 1).collect();
        Characters { dictionary: dictionary.to_vec(), provinces }
    }

    /// The plate number in the recognizer's output, if it reads as one.
    pub fn plate(&self, steps: &TextSteps) -> Option<Read> {
        let emitted = greedy(steps);
        self.plate_in(steps, &emitted).or_else(|| {
            let core = Self::without_unsure_ends(&emitted);
            (core.len() < emitted.len()).then(|| self.plate_in(steps, core)).flatten()
        })
    }

    /// The plate number the characters `emitted` spell, directly or with the province taken
    /// from the steps.
    fn plate_in(&self, steps: &TextSteps, emitted: &[Emitted]) -> Option<Read> {
        let read = |chars: &[Emitted]| {
            let text: String = chars.iter().filter_map(|e| self.character(e.class)).collect();
            let number = plate_number(&text)?;
            let confidence = chars.iter().map(|e| e.p).sum::<f32>() / chars.len() as f32;
            Some(Read { text: number, confidence })
        };
        if let Some(plate) = read(emitted) {
            return Some(plate);
        }
        // The province missed (nothing before the letter) or misread (something else there).
        let first = emitted.first()?;
        let missed = (0, first.steps.0);
        let misread = (first.steps.0, first.steps.1 + 1);
        let mut candidates = Vec::new();
        if let Some(province) = self.best_province(steps, missed) {
            candidates.push([&[province][..], emitted].concat());
        }
        if let Some(province) = self.best_province(steps, misread) {
            candidates.push([&[province][..], &emitted[1..]].concat());
        }
        candidates
            .iter()
            .filter_map(|c| read(c))
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
    }

    /// `emitted` without the characters at its ends the recognizer doubts (see [`EDGE_DOUBT`]).
    fn without_unsure_ends(emitted: &[Emitted]) -> &[Emitted] {
        let start = emitted.iter().position(|e| e.p >= EDGE_DOUBT).unwrap_or(emitted.len());
        let end = emitted.iter().rposition(|e| e.p >= EDGE_DOUBT).map_or(start, |i| i + 1);
        &emitted[start..end.max(start)]
    }

    /// The likeliest province character over the steps `from..to`, if at least
    /// [`PROVINCE_FLOOR`] likely at one of them.
    fn best_province(&self, steps: &TextSteps, (from, to): (usize, usize)) -> Option<Emitted> {
        let rows =
            steps.probability.chunks_exact(steps.classes).enumerate().skip(from).take(to - from);
        let mut best: Option<Emitted> = None;
        for (step, row) in rows {
            for &class in &self.provinces {
                let p = row[class];
                if p >= PROVINCE_FLOOR && best.is_none_or(|b| p > b.p) {
                    best = Some(Emitted { class, p, steps: (step, step) });
                }
            }
        }
        best
    }

    fn character(&self, class: usize) -> Option<&str> {
        self.dictionary.get(class.checked_sub(1)?).map(String::as_str)
    }
}

/// Greedy CTC decoding: the likeliest class at each step, repeats collapsed, blanks (class 0)
/// dropped.
fn greedy(steps: &TextSteps) -> Vec<Emitted> {
    let mut emitted: Vec<Emitted> = Vec::new();
    let mut previous = 0;
    for (step, row) in steps.probability.chunks_exact(steps.classes).enumerate() {
        let (class, p) =
            row.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0));
        if class != 0 && class == previous {
            if let Some(last) = emitted.last_mut() {
                last.steps.1 = step;
                last.p = last.p.max(p);
            }
        } else if class != 0 {
            emitted.push(Emitted { class, p, steps: (step, step) });
        }
        previous = class;
    }
    emitted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps whose likeliest classes are `best`, each at 0.9, with `extra` probabilities set.
    fn steps(classes: usize, best: &[usize], extra: &[(usize, usize, f32)]) -> TextSteps {
        let mut probability = Vec::new();
        for &b in best {
            let mut row = vec![0.0; classes];
            row[b] = 0.9;
            probability.extend(row);
        }
        for &(step, class, p) in extra {
            probability[step * classes + class] = p;
        }
        TextSteps { steps: best.len(), classes, probability }
    }

    fn characters() -> Characters {
        let dictionary: Vec<String> = "皖 苏 A C J 2 1 8 R".split(' ').map(String::from).collect();
        Characters::new(&dictionary)
    }

    // Classes: 1 皖, 2 苏, 3 A, 4 C, 5 J, 6 2, 7 1, 8 8, 9 R.

    #[test]
    fn ctc_collapses_repeats_and_drops_blanks() {
        // 皖 皖 blank A C J 2 blank 1 8 8
        let s = steps(10, &[1, 1, 0, 3, 4, 5, 6, 0, 7, 8, 8], &[]);
        let read = characters().plate(&s).unwrap();
        assert_eq!(read.text, "皖ACJ218");
        assert!((read.confidence - 0.9).abs() < 1e-6);
    }

    #[test]
    fn a_misread_province_is_taken_from_its_steps_when_the_model_saw_one_there() {
        // R where 皖 should be; 皖 at 0.3 on the same step.
        let s = steps(10, &[9, 0, 3, 4, 5, 6, 7, 8], &[(0, 1, 0.3)]);
        let read = characters().plate(&s).unwrap();
        assert_eq!(read.text, "皖ACJ218");
        assert!((read.confidence - (0.3 + 6.0 * 0.9) / 7.0).abs() < 1e-6);
    }

    #[test]
    fn a_missed_province_is_taken_from_the_steps_before_the_letter() {
        let s = steps(10, &[0, 0, 3, 4, 5, 6, 7, 8], &[(1, 2, 0.4)]);
        assert_eq!(characters().plate(&s).unwrap().text, "苏ACJ218");
    }

    #[test]
    fn doubtful_characters_at_the_ends_are_the_plates_frame() {
        // R 皖 A C J 2 1 8 1, the first R and the last 1 at 0.45: the frame and a rivet.
        let s = steps(10, &[9, 1, 3, 4, 5, 6, 7, 8, 7], &[(0, 9, 0.45), (8, 7, 0.45)]);
        let read = characters().plate(&s).unwrap();
        assert_eq!(read.text, "皖ACJ218");
        assert!((read.confidence - 0.9).abs() < 1e-6);
        // A sure extra character is no frame: 皖ACJ2181 is no plate at all.
        let s = steps(10, &[1, 3, 4, 5, 6, 7, 8, 7], &[]);
        assert_eq!(characters().plate(&s), None);
    }

    #[test]
    fn no_province_is_invented_where_the_model_saw_none() {
        let s = steps(10, &[9, 0, 3, 4, 5, 6, 7, 8], &[(0, 1, 0.05)]);
        assert_eq!(characters().plate(&s), None);
        let s = steps(10, &[0, 3, 4, 5, 6, 7, 8], &[]);
        assert_eq!(characters().plate(&s), None);
    }
}
