//! `json.decode` / `json.encode`: serde_json values ↔ Lua values.
//!
//! JSON null is `json.null` (a light userdata), so it survives inside arrays; a Lua table is an
//! array when its keys are exactly 1..n (n ≥ 1), an object otherwise (an empty table is `{}`).

use mlua::{Lua, Table, Value};
use serde_json::{Map, Number, Value as Json};

/// Tables nested deeper than this (or a table that contains itself) cannot be encoded.
const MAX_DEPTH: usize = 100;

pub(crate) fn table(lua: &Lua) -> mlua::Result<Table> {
    let json = lua.create_table()?;
    json.set("null", Value::NULL)?;
    json.set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            match serde_json::from_slice::<Json>(&text.as_bytes()) {
                Ok(v) => Ok((to_lua(lua, &v)?, None)),
                Err(e) => Ok((Value::Nil, Some(format!("invalid JSON: {e}")))),
            }
        })?,
    )?;
    json.set(
        "encode",
        lua.create_function(|_, value: Value| match from_lua(&value, 0) {
            Ok(v) => Ok((Some(v.to_string()), None)),
            Err(e) => Ok((None, Some(e))),
        })?,
    )?;
    Ok(json)
}

fn to_lua(lua: &Lua, v: &Json) -> mlua::Result<Value> {
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

fn from_lua(v: &Value, depth: usize) -> Result<Json, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "cannot encode: tables nested deeper than {MAX_DEPTH} (a table that contains itself?)"
        ));
    }
    Ok(match v {
        Value::Nil => Json::Null,
        v if v.is_null() => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::Number((*i).into()),
        Value::Number(n) => Json::Number(
            Number::from_f64(*n).ok_or_else(|| format!("cannot encode the number {n}"))?,
        ),
        Value::String(s) => Json::String(s.to_string_lossy()),
        Value::Table(t) => {
            let n = t.raw_len();
            let count = t.pairs::<Value, Value>().count();
            if n > 0 && count == n {
                let mut items = Vec::with_capacity(n);
                for i in 1..=n {
                    items.push(from_lua(
                        &t.raw_get::<Value>(i).map_err(|e| e.to_string())?,
                        depth + 1,
                    )?);
                }
                Json::Array(items)
            } else {
                let mut map = Map::new();
                for pair in t.pairs::<Value, Value>() {
                    let (k, item) = pair.map_err(|e| e.to_string())?;
                    let key = match k {
                        Value::String(s) => s.to_string_lossy(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => n.to_string(),
                        other => {
                            return Err(format!("cannot encode a {} as a key", other.type_name()));
                        }
                    };
                    map.insert(key, from_lua(&item, depth + 1)?);
                }
                Json::Object(map)
            }
        }
        other => return Err(format!("cannot encode a {}", other.type_name())),
    })
}
