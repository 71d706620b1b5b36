//! Specification years: a measure's text that differs from one year's specification to the
//! next (`where: {2024: …, 2025: …}`), and which year a run follows.
//!
//! A keyed value applies from its year until the next key; a run for year Y takes the greatest
//! key not after Y, and a run for the newest year the greatest key. A measure with no keyed value
//! follows every year alike.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::Located;

/// The earliest and latest years a key may name (the Core Set began in 2013).
pub const YEARS: std::ops::RangeInclusive<u16> = 2013..=2099;

/// Which specification year a run follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spec {
    /// Each measure's newest year.
    #[default]
    Newest,
    /// One measurement year (MY): each measure's text for that year.
    Year(u16),
}

impl Spec {
    /// `2025`, `MY2025` or `newest`.
    pub fn parse(text: &str) -> std::result::Result<Spec, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("newest") || t.eq_ignore_ascii_case("latest") {
            return Ok(Spec::Newest);
        }
        let digits = t
            .strip_prefix("MY")
            .or_else(|| t.strip_prefix("my"))
            .unwrap_or(t)
            .trim();
        match digits.parse::<u16>() {
            Ok(y) if YEARS.contains(&y) => Ok(Spec::Year(y)),
            _ => Err(format!(
                "{text:?} is not a specification year: write a measurement year such as 2025 (or MY2025, or newest)"
            )),
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Newest => f.write_str("newest"),
            Spec::Year(y) => write!(f, "MY{y}"),
        }
    }
}

/// A text that is either one value for every year or a value per year, each with its place.
#[derive(Debug, Clone)]
pub(crate) struct ByYear {
    /// `(None, text)` for a plain value; else `(Some(year), text)` in the order written.
    pub entries: Vec<(Option<u16>, Located<String>)>,
    /// Where the value (or the map) begins.
    pub line: usize,
    pub column: usize,
}

impl ByYear {
    /// The years this value names (none for a plain value).
    pub fn years(&self) -> impl Iterator<Item = u16> + '_ {
        self.entries.iter().filter_map(|(y, _)| *y)
    }

    /// Keep only the entry `year` selects (see the module doc); `Err(first year)` when every
    /// key is later than `year`.
    pub fn select(&mut self, spec: Spec) -> std::result::Result<(), u16> {
        if self.entries.iter().all(|(y, _)| y.is_none()) {
            return Ok(());
        }
        let pick = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (y, _))| match spec {
                Spec::Newest => true,
                Spec::Year(want) => y.is_some_and(|y| y <= want),
            })
            .max_by_key(|(_, (y, _))| *y)
            .map(|(i, _)| i);
        match pick {
            Some(i) => {
                let kept = self.entries.swap_remove(i);
                self.entries = vec![kept];
                Ok(())
            }
            None => Err(self.years().min().unwrap_or_default()),
        }
    }

    /// The one value left after [`Self::select`] (the first when several remain).
    pub fn into_located(self) -> Located<String> {
        let (line, column) = (self.line, self.column);
        self.entries
            .into_iter()
            .next()
            .map(|(_, l)| l)
            .unwrap_or(Located {
                value: String::new(),
                line,
                column,
            })
    }
}

impl<'de> Deserialize<'de> for ByYear {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Read through a `Spanned` so the plain form keeps its place; the keyed form's values
        // carry their own.
        let outer: Spanned<Inner> = Spanned::deserialize(d)?;
        let (line, column) = (
            outer.referenced.line() as usize,
            outer.referenced.column() as usize,
        );
        let entries = match outer.value {
            Inner::One(text) => vec![(
                None,
                Located {
                    value: text,
                    line,
                    column,
                },
            )],
            Inner::Years(entries) => entries,
        };
        Ok(ByYear {
            entries,
            line,
            column,
        })
    }
}

enum Inner {
    One(String),
    Years(Vec<(Option<u16>, Located<String>)>),
}

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(InnerVisitor)
    }
}

struct InnerVisitor;

impl<'de> Visitor<'de> for InnerVisitor {
    type Value = Inner;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a text, or a text per specification year (`{2024: …, 2025: …}`)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Inner, E> {
        Ok(Inner::One(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Inner, E> {
        Ok(Inner::One(v))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Inner, A::Error> {
        let mut entries: Vec<(Option<u16>, Located<String>)> = Vec::new();
        while let Some(year) = map.next_key::<u16>()? {
            if !YEARS.contains(&year) {
                return Err(de::Error::custom(format!(
                    "{year} is not a specification year (a key is a measurement year such as 2025)"
                )));
            }
            if entries.iter().any(|(y, _)| *y == Some(year)) {
                return Err(de::Error::custom(format!("year {year} is given twice")));
            }
            let value: Spanned<String> = map.next_value()?;
            entries.push((Some(year), Located::from(value)));
        }
        if entries.is_empty() {
            return Err(de::Error::custom(
                "an empty map: give the text, or one text per specification year",
            ));
        }
        Ok(Inner::Years(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        w: ByYear,
    }

    fn doc(text: &str) -> ByYear {
        serde_saphyr::from_str::<Doc>(text).unwrap().w
    }

    #[test]
    fn a_plain_text_serves_every_year_with_its_place() {
        let mut w = doc("w: acute\n");
        assert_eq!(w.years().count(), 0);
        w.select(Spec::Year(2013)).unwrap();
        let l = w.into_located();
        assert_eq!((l.value.as_str(), l.line, l.column), ("acute", 1, 4));
    }

    #[test]
    fn a_year_takes_the_latest_key_not_after_it() {
        let text = "w:\n  2024: old\n  2025: new\n";
        let pick = |spec| {
            let mut w = doc(text);
            w.select(spec).map(|_| {
                let l = w.into_located();
                (l.value, l.line)
            })
        };
        assert_eq!(pick(Spec::Year(2024)), Ok(("old".into(), 2)));
        assert_eq!(pick(Spec::Year(2025)), Ok(("new".into(), 3)));
        assert_eq!(pick(Spec::Year(2030)), Ok(("new".into(), 3)));
        assert_eq!(pick(Spec::Newest), Ok(("new".into(), 3)));
        assert_eq!(pick(Spec::Year(2023)), Err(2024));
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in [
            "w: {}\n",
            "w: {1999: x}\n",
            "w: {2024: a, 2024: b}\n",
            "w: [a]\n",
        ] {
            assert!(serde_saphyr::from_str::<Doc>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_years_parse() {
        assert_eq!(Spec::parse("2025"), Ok(Spec::Year(2025)));
        assert_eq!(Spec::parse("MY2024"), Ok(Spec::Year(2024)));
        assert_eq!(Spec::parse("newest"), Ok(Spec::Newest));
        assert!(Spec::parse("25").is_err());
        assert!(Spec::parse("FY2025").is_err());
    }
}
