//! `json.decode` / `json.encode`: JSON text ↔ Lua values.
//!
//! JSON null is `json.null` (a light userdata), so it survives inside arrays; a Lua table is an
//! array when its keys are exactly 1..n (n ≥ 1), an object otherwise (an empty table is `{}`);
//! object keys come out sorted.
//!
//! Both work on memory outside the Lua memory limit (the text being written, the parsed
//! document), so both are bounded by [`MAX_JSON`] bytes of JSON text: an encoding stops as soon
//! as it would be longer (a table that holds the same subtable twice, nested 40 times, would be
//! terabytes), and a longer text is not decoded.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use mlua::{Lua, Table, Value};
use serde_json::{Number, Value as Json};

use super::ctx::Ctx;

/// Tables nested deeper than this (or a table that contains itself) cannot be encoded.
const MAX_DEPTH: usize = 100;
/// The longest JSON text `json.encode` makes and `json.decode` reads.
pub(crate) const MAX_JSON: usize = 1 << 20;
/// The deadline is checked every this many values encoded.
const CHECK_EVERY: usize = 4096;

pub(crate) fn table(lua: &Lua, ctx: &Arc<Ctx>) -> mlua::Result<Table> {
    let json = lua.create_table()?;
    json.set("null", Value::NULL)?;
    let c = Arc::clone(ctx);
    json.set(
        "decode",
        lua.create_function(move |lua, text: mlua::LuaString| {
            c.check_deadline()?;
            let text = text.as_bytes();
            if text.len() > MAX_JSON {
                return Ok((
                    Value::Nil,
                    Some(format!(
                        "cannot decode: the text is {} bytes, more than {} MiB",
                        text.len(),
                        MAX_JSON >> 20
                    )),
                ));
            }
            match serde_json::from_slice::<Json>(&text) {
                Ok(v) => Ok((to_lua(lua, &v)?, None)),
                Err(e) => Ok((Value::Nil, Some(format!("invalid JSON: {e}")))),
            }
        })?,
    )?;
    let c = Arc::clone(ctx);
    json.set(
        "encode",
        lua.create_function(move |lua, value: Value| {
            c.check_deadline()?;
            let mut e = Encoder {
                out: Vec::new(),
                values: 0,
                ctx: &c,
            };
            match e.value(&value, 0) {
                Ok(()) => Ok((Some(lua.create_string(&e.out)?), None)),
                Err(Fail::Cannot(why)) => Ok((None, Some(why))),
                Err(Fail::Lua(e)) => Err(e),
            }
        })?,
    )?;
    Ok(json)
}

/// A JSON value as a Lua value: null as `json.null`, an object as a table of its keys.
pub(crate) fn to_lua(lua: &Lua, v: &Json) -> mlua::Result<Value> {
    Ok(match v {
        Json::Null => Value::NULL,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        Json::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

/// Why an encoding failed: a value JSON cannot hold (`nil, why` for the chunk), or an error to
/// raise (the chunk's timeout).
enum Fail {
    Cannot(String),
    Lua(mlua::Error),
}

impl From<String> for Fail {
    fn from(why: String) -> Fail {
        Fail::Cannot(why)
    }
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Fail {
        Fail::Lua(e)
    }
}

fn too_large() -> Fail {
    Fail::Cannot(format!(
        "cannot encode: the result would be larger than {} MiB",
        MAX_JSON >> 20
    ))
}

/// Writes JSON text into `out`, never more than [`MAX_JSON`] bytes.
struct Encoder<'a> {
    out: Vec<u8>,
    /// Values written so far (for the deadline check).
    values: usize,
    ctx: &'a Ctx,
}

impl Encoder<'_> {
    /// Fails unless `more` bytes still fit.
    fn room(&self, more: usize) -> Result<(), Fail> {
        if self.out.len().saturating_add(more) > MAX_JSON {
            return Err(too_large());
        }
        Ok(())
    }

    fn value(&mut self, v: &Value, depth: usize) -> Result<(), Fail> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "cannot encode: tables nested deeper than {MAX_DEPTH} (a table that contains itself?)"
            )
            .into());
        }
        self.values += 1;
        if self.values.is_multiple_of(CHECK_EVERY) {
            self.ctx.check_deadline()?;
        }
        match v {
            Value::Nil => self.out.extend_from_slice(b"null"),
            v if v.is_null() => self.out.extend_from_slice(b"null"),
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Integer(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Number(n) => {
                let n =
                    Number::from_f64(*n).ok_or_else(|| format!("cannot encode the number {n}"))?;
                let _ = write!(self.out, "{n}");
            }
            Value::String(s) => {
                // At least its length and two quotes.
                self.room(s.as_bytes().len() + 2)?;
                self.string(&s.to_string_lossy());
            }
            Value::Table(t) => self.table(t, depth)?,
            other => return Err(format!("cannot encode a {}", other.type_name()).into()),
        }
        self.room(0)
    }

    fn string(&mut self, s: &str) {
        let _ = serde_json::to_writer(&mut self.out, s);
    }

    fn table(&mut self, t: &Table, depth: usize) -> Result<(), Fail> {
        let n = t.raw_len();
        let count = t.pairs::<Value, Value>().count();
        if n > 0 && count == n {
            // `[`, `]`, and at least one byte and a comma per item.
            self.room(2 * n + 1)?;
            self.out.push(b'[');
            for i in 1..=n {
                if i > 1 {
                    self.out.push(b',');
                }
                let item = t.raw_get::<Value>(i).map_err(|e| e.to_string())?;
                self.value(&item, depth + 1)?;
            }
            self.out.push(b']');
            return Ok(());
        }
        // `{`, `}`, and at least `"":0,` per entry.
        self.room(5 * count + 1)?;
        let mut entries = BTreeMap::new();
        for pair in t.pairs::<Value, Value>() {
            let (k, item) = pair.map_err(|e| e.to_string())?;
            let key = match k {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(i) => i.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!("cannot encode a {} as a key", other.type_name()).into());
                }
            };
            entries.insert(key, item);
        }
        self.out.push(b'{');
        for (i, (key, item)) in entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.room(key.len() + 2)?;
            self.string(key);
            self.out.push(b':');
            self.value(item, depth + 1)?;
        }
        self.out.push(b'}');
        Ok(())
    }
}
