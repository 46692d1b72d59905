//! The template functions (`json`, `join`, `printf`, `eq`, ...) and Go's printing of values.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::exec::truthy;
use super::NO_VALUE;
use crate::cli::units::go_float;

pub(super) fn as_str(v: &Value) -> String {
    go_print(v)
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).ok_or_else(|| anyhow!("template: incomparable values")),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
            _ => bail!("template: incompatible types for comparison"),
        },
    }
}

pub(super) fn call(name: &str, args: Vec<Value>) -> Result<Value> {
    let want = |n: usize| -> Result<()> {
        if args.len() != n {
            bail!("template: wrong number of args for {name}: want {n} got {}", args.len());
        }
        Ok(())
    };
    Ok(match name {
        "json" => {
            want(1)?;
            let v = match &args[0] {
                Value::String(s) if s == NO_VALUE => Value::Null,
                v => v.clone(),
            };
            // docker's template `json` turns HTML escaping off: <, > and & stay as they are.
            Value::String(serde_json::to_string(&v)?)
        }
        "upper" => {
            want(1)?;
            Value::String(as_str(&args[0]).to_uppercase())
        }
        "lower" => {
            want(1)?;
            Value::String(as_str(&args[0]).to_lowercase())
        }
        "title" => {
            want(1)?;
            let s = as_str(&args[0]);
            let mut out = String::new();
            let mut start = true;
            for c in s.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            Value::String(out)
        }
        "join" => {
            want(2)?;
            let sep = as_str(&args[1]);
            match &args[0] {
                Value::Array(a) => Value::String(a.iter().map(go_print).collect::<Vec<_>>().join(&sep)),
                other => Value::String(go_print(other)),
            }
        }
        "split" => {
            want(2)?;
            let s = as_str(&args[0]);
            let sep = as_str(&args[1]);
            Value::Array(s.split(sep.as_str()).map(|x| Value::String(x.into())).collect())
        }
        "index" => {
            if args.is_empty() {
                bail!("template: index needs at least one argument");
            }
            let mut cur = args[0].clone();
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Array(a), k) => {
                        let i = num(k).ok_or_else(|| anyhow!("template: cannot index slice with {}", go_print(k)))?;
                        a.get(i as usize)
                            .cloned()
                            .ok_or_else(|| anyhow!("template: index out of range: {i}"))?
                    }
                    (Value::Object(m), k) => m.get(&as_str(k)).cloned().unwrap_or(Value::String(NO_VALUE.into())),
                    _ => bail!("template: can't index item of type {}", type_name(&cur)),
                };
            }
            cur
        }
        "len" => {
            want(1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                other => bail!("template: len of {}", type_name(other)),
            })
        }
        "print" => Value::String(args.iter().map(go_print).collect()),
        "println" => Value::String(args.iter().map(go_print).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            if args.is_empty() {
                bail!("template: printf needs a format");
            }
            Value::String(printf(&as_str(&args[0]), &args[1..]))
        }
        "truncate" => {
            want(2)?;
            let n = num(&args[1]).unwrap_or(0.0) as usize;
            Value::String(as_str(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            want(3)?;
            let l = num(&args[1]).unwrap_or(0.0) as usize;
            let r = num(&args[2]).unwrap_or(0.0) as usize;
            Value::String(format!("{}{}{}", " ".repeat(l), as_str(&args[0]), " ".repeat(r)))
        }
        "eq" => {
            if args.len() < 2 {
                bail!("template: eq needs two arguments");
            }
            Value::Bool(args[1..].iter().any(|b| values_eq(&args[0], b)))
        }
        "ne" => {
            want(2)?;
            Value::Bool(!values_eq(&args[0], &args[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = compare(&args[0], &args[1])?;
            Value::Bool(match name {
                "lt" => o.is_lt(),
                "le" => o.is_le(),
                "gt" => o.is_gt(),
                _ => o.is_ge(),
            })
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => args.iter().find(|a| !truthy(a)).or(args.last()).cloned().unwrap_or(Value::Null),
        "or" => args.iter().find(|a| truthy(a)).or(args.last()).cloned().unwrap_or(Value::Null),
        _ => bail!("template: function {name:?} not defined"),
    })
}

fn values_eq(a: &Value, b: &Value) -> bool {
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Go's `printf` for the verbs templates use (`%s %v %d %q %x %f %t %%`), with the flags `-`
/// (left-justify) and `0` (zero padding), a width and a precision (`%-12s`, `%.5s`, `%6.2f`).
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = args.iter();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero) = (false, false);
        while let Some(&f) = it.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            it.next();
        }
        let number = |it: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                n.push(d);
                it.next();
            }
            n.parse::<usize>().ok()
        };
        let width = number(&mut it);
        let precision = if it.peek() == Some(&'.') {
            it.next();
            Some(number(&mut it).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = ai.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let num = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
        let mut text = match verb {
            'q' => format!("{:?}", go_print(arg)),
            'd' => match arg.as_i64().or_else(|| num(arg).map(|f| f as i64)) {
                Some(i) => i.to_string(),
                None => format!("%!d({})", go_print(arg)),
            },
            'x' => match arg.as_u64() {
                Some(u) => format!("{u:x}"),
                None => go_print(arg).bytes().map(|b| format!("{b:02x}")).collect(),
            },
            'f' | 'g' | 'e' => match num(arg) {
                Some(f) => format!("{:.*}", precision.unwrap_or(6), f),
                None => format!("%!{verb}({})", go_print(arg)),
            },
            _ => go_print(arg),
        };
        if let (Some(p), 's' | 'v' | 'q') = (precision, verb) {
            text = text.chars().take(p).collect();
        }
        let len = text.chars().count();
        if let Some(w) = width.filter(|w| *w > len) {
            let pad = w - len;
            if left {
                text.push_str(&" ".repeat(pad));
            } else if zero && matches!(verb, 'd' | 'f' | 'x') {
                let (sign, digits) = text.split_at(usize::from(text.starts_with('-')));
                text = format!("{sign}{}{digits}", "0".repeat(pad));
            } else {
                text = format!("{}{text}", " ".repeat(pad));
            }
        }
        out.push_str(&text);
    }
    out
}

/// Print a value the way Go's `fmt` prints it in a template: `true`, `[a b]`, `map[k:v]`.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                go_float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            format!(
                "map[{}]",
                sorted
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", go_print(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}
