//! Title and service templates (minijinja), compiled at load so a broken
//! template is a load error, not a 3 a.m. surprise. Label and annotation
//! values are passed as data: text inside a label is never run as a template.
use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Environment;

use crate::model::{Annotations, LabelSet};

/// Most unary signs in a row a template may hold. minijinja limits the
/// nesting of most expressions but not of repeated unary operators, and
/// thousands of them overflow the stack while compiling.
const MAX_UNARY_RUN: usize = 64;

/// Refuse sources that would nest deeper than the compiler can take.
/// Only code (`{{ }}`, `{% %}`) counts; text may hold any separator line.
pub fn check_nesting(source: &str) -> Result<(), String> {
    let mut run = 0;
    let mut in_code = false;
    let mut prev = '\0';
    for c in source.chars() {
        match (prev, c) {
            ('{', '{' | '%') => in_code = true,
            ('}' | '%', '}') => in_code = false,
            _ => {}
        }
        prev = c;
        if !in_code {
            run = 0;
            continue;
        }
        match c {
            '-' | '+' | '~' | '!' => {
                run += 1;
                if run > MAX_UNARY_RUN {
                    return Err(format!("expression nested too deeply (more than {MAX_UNARY_RUN} signs in a row)"));
                }
            }
            c if c.is_whitespace() => {}
            _ => run = 0,
        }
    }
    Ok(())
}

/// Every template of a rule set, by name.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates { env: Arc::new(Environment::new()) }
    }
}

/// Collects templates while rules compile.
pub struct TemplateBuilder {
    env: Environment<'static>,
    /// The same templates, where anything undefined is an error: each is
    /// rendered here once at load, so a misspelt variable or an unknown
    /// filter fails `check` instead of rendering empty at 3 a.m.
    strict: Environment<'static>,
}

impl Default for TemplateBuilder {
    fn default() -> Self {
        let mut env = Environment::new();
        // Titles are plain text, not HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let mut strict = env.clone();
        strict.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        TemplateBuilder { env, strict }
    }
}

/// Labels or annotations at load time: every name is defined (an alert
/// may carry any label), a few have sample values to iterate over.
#[derive(Debug)]
struct AnyNames(&'static [(&'static str, &'static str)]);

const SAMPLE_LABELS: &[(&str, &str)] = &[
    ("alertname", "SampleAlert"),
    ("instance", "host-1:9100"),
    ("job", "node"),
    ("namespace", "default"),
    ("service", "sample"),
    ("severity", "critical"),
];
const SAMPLE_ANNOTATIONS: &[(&str, &str)] =
    &[("summary", "a sample alert"), ("description", "rendered at load to check the template")];

impl minijinja::value::Object for AnyNames {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let name = key.as_str()?;
        Some(minijinja::Value::from(self.0.iter().find(|(k, _)| *k == name).map_or("", |(_, v)| v)))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(self.0.iter().map(|(k, _)| minijinja::Value::from(*k)).collect())
    }
}

/// A minijinja error as one line: its kind and detail.
fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    msg
}

impl TemplateBuilder {
    /// Compile `source` under `name`; the error says what is wrong.
    pub fn add(&mut self, name: String, source: String) -> Result<(), String> {
        check_nesting(&source)?;
        self.strict.add_template_owned(name.clone(), source.clone()).map_err(|e| describe(&e))?;
        let ctx: BTreeMap<&str, minijinja::Value> = [
            ("labels", minijinja::Value::from_object(AnyNames(SAMPLE_LABELS))),
            ("annotations", minijinja::Value::from_object(AnyNames(SAMPLE_ANNOTATIONS))),
        ]
        .into();
        let rendered = self.strict.get_template(&name).and_then(|t| t.render(ctx));
        self.strict.remove_template(&name);
        rendered.map_err(|e| format!("rendering a sample alert failed: {}", describe(&e)))?;
        self.env.add_template_owned(name, source).map_err(|e| describe(&e))
    }

    pub fn finish(self) -> Templates {
        Templates { env: Arc::new(self.env) }
    }
}

impl Templates {
    /// Render a template over an alert's labels and annotations. Missing
    /// labels render as empty text.
    pub fn render(&self, name: &str, labels: &LabelSet, annotations: &Annotations) -> Result<String, String> {
        let t = self.env.get_template(name).map_err(|e| e.to_string())?;
        let ctx: BTreeMap<&str, minijinja::Value> = [
            ("labels", minijinja::Value::from_serialize(labels)),
            ("annotations", minijinja::Value::from_serialize(annotations)),
        ]
        .into();
        t.render(ctx).map(|s| s.trim().to_owned()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_unary_nesting_is_refused_but_text_may_hold_dashes() {
        let deep = format!("{{{{ {} labels.x }}}}", "- ".repeat(5000));
        assert!(check_nesting(&deep).unwrap_err().contains("nested too deeply"));
        let mut b = TemplateBuilder::default();
        assert!(b.add("t".into(), deep).is_err());
        assert!(check_nesting(&format!("{}\n{{{{ -1 }}}}", "-".repeat(200))).is_ok());
        assert!(check_nesting("{{ labels.a }} -- {{ - - 1 }}").is_ok());
    }

    #[test]
    fn renders_labels_as_data() {
        let mut b = TemplateBuilder::default();
        b.add("t".into(), "{{ labels.alertname }} in {{ labels.namespace }}".into()).unwrap();
        let t = b.finish();
        let labels: LabelSet =
            [("alertname".to_string(), "{{ 7*7 }}<b>".to_string()), ("namespace".to_string(), "prod".to_string())]
                .into();
        let out = t.render("t", &labels, &Annotations::new()).unwrap();
        assert_eq!(out, "{{ 7*7 }}<b> in prod");
        let out = t.render("t", &LabelSet::new(), &Annotations::new()).unwrap();
        assert_eq!(out, "in");
    }

    #[test]
    fn unknown_filters_and_variables_are_caught_at_load() {
        let mut b = TemplateBuilder::default();
        let e = b.add("a".into(), "{{ labels.alertname | shout }}".into()).unwrap_err();
        assert!(e.contains("unknown filter"), "{e}");
        let e = b.add("b".into(), "{{ lables.alertname }}".into()).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        // Any label may be missing from an alert; that is not an error.
        b.add("c".into(), "{{ labels.no_such_label | upper }} {{ annotations.runbook_url }}".into()).unwrap();
        b.add("d".into(), "{% for k in labels %}{{ k }}={{ labels[k] }} {% endfor %}".into()).unwrap();
        let t = b.finish();
        assert_eq!(t.render("c", &LabelSet::new(), &Annotations::new()).unwrap(), "");
        assert!(t.render("a", &LabelSet::new(), &Annotations::new()).is_err(), "refused templates are not kept");
    }

    #[test]
    fn syntax_errors_are_caught_at_compile_time() {
        let mut b = TemplateBuilder::default();
        let e = b.add("t".into(), "{{ labels.alertname ".into()).unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
    }
}
