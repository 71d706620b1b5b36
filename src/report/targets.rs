//! Targets a report measures its rates against (`hhq report --targets FILE`): the state's
//! quality-improvement goals or national medians from CMS's Health Home Core Set chart pack,
//! whichever the user supplies. A CSV with columns `measure,component,target[,source]`, the
//! target in the component's unit (`45.0` for 45%).

use std::path::Path;

use crate::error::{Error, Result};
use crate::measure::Measure;

/// One component's target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub measure: String,
    pub component: String,
    pub value: f64,
    /// Where the target comes from ("state QI goal 2025", "national median FFY 2023").
    pub source: String,
}

/// Read a targets file, every row checked against the measures defined: an unknown measure or
/// component, a target that is not a finite number or a duplicate is an error at its line.
/// Targets of measures `reported` leaves out are not returned.
pub fn load(path: &Path, defined: &[Measure], reported: &[Measure]) -> Result<Vec<Target>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut targets = parse(path, &text, defined)?;
    targets.retain(|t| reported.iter().any(|m| m.id == t.measure));
    Ok(targets)
}

fn parse(path: &Path, text: &str, measures: &[Measure]) -> Result<Vec<Target>> {
    let err = |line: usize, message: String| Error::Definition {
        path: path.to_path_buf(),
        line,
        column: 1,
        message,
        hint: None,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| err(1, format!("cannot read the header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(mi), Some(ci), Some(ti)) = (column("measure"), column("component"), column("target"))
    else {
        return Err(err(
            1,
            "a targets file has columns measure,component,target[,source]".into(),
        ));
    };
    let si = column("source");
    let mut targets: Vec<Target> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(1, |p| p.line() as usize);
            err(line, format!("malformed CSV: {e}"))
        })?;
        let line = record.position().map_or(1, |p| p.line() as usize);
        let field = |i: usize| record.get(i).unwrap_or("");
        let (measure, component) = (field(mi), field(ci));
        let Some(m) = measures.iter().find(|m| m.id.eq_ignore_ascii_case(measure)) else {
            let ids: Vec<&str> = measures.iter().map(|m| m.id.as_str()).collect();
            return Err(err(
                line,
                format!("`{measure}` is not a measure (defined: {})", ids.join(", ")),
            ));
        };
        if !m.components.iter().any(|c| c.name.value == component) {
            let names: Vec<&str> = m.components.iter().map(|c| c.name.value.as_str()).collect();
            return Err(err(
                line,
                format!(
                    "{} has no component `{component}` (its components: {})",
                    m.id,
                    names.join(", ")
                ),
            ));
        }
        let value: f64 = field(ti)
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| err(line, format!("target `{}` is not a number", field(ti))))?;
        if targets
            .iter()
            .any(|t| t.measure == m.id && t.component == component)
        {
            return Err(err(
                line,
                format!("a second target for {} {component}", m.id),
            ));
        }
        targets.push(Target {
            measure: m.id.clone(),
            component: component.to_string(),
            value,
            source: si.map(field).unwrap_or("").to_string(),
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measures() -> Vec<Measure> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("measures");
        ["fuh-hh.yaml", "amb-hh.yaml"]
            .iter()
            .map(|f| Measure::load(&root.join(f)).expect("a shipped measure"))
            .collect()
    }

    #[test]
    fn targets_are_read_and_every_mistake_named_at_its_line() {
        let ms = measures();
        let p = Path::new("targets.csv");
        let t = parse(
            p,
            "measure,component,target,source\nFUH-HH,7_day,45.5,state goal\namb-hh,ed_visits,60,\n",
            &ms,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].value, t[0].source.as_str()), (45.5, "state goal"));
        assert_eq!(t[1].measure, "AMB-HH");
        let e = |text: &str| parse(p, text, &ms).unwrap_err().to_string();
        assert!(e("measure,target\n").contains("columns measure,component,target"));
        let unknown = e("measure,component,target\nFUH-HH,7_day,1\nFUX-HH,7_day,2\n");
        assert!(
            unknown.contains(":3:") && unknown.contains("FUX-HH"),
            "{unknown}"
        );
        let component = e("measure,component,target\nFUH-HH,7day,1\n");
        assert!(component.contains("7_day, 30_day"), "{component}");
        assert!(e("measure,component,target\nFUH-HH,7_day,high\n").contains("not a number"));
        assert!(e("measure,component,target\nFUH-HH,7_day,NaN\n").contains("not a number"));
        let twice = e("measure,component,target\nFUH-HH,7_day,1\nFUH-HH,7_day,2\n");
        assert!(twice.contains("second target"), "{twice}");
    }
}
