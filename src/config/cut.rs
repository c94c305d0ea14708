//! A one-line Lua chunk that YAML cut at ` #`.
//!
//! In a plain (unquoted, one-line) YAML value, ` #` starts a comment, so
//! `check: return #exec("ls") > 0` is read as `check: return`: a chunk that compiles, returns
//! nil and fails every tick. A real comment after a complete chunk (`check: return true  #
//! healthy`) is legitimate YAML and must stay so. They are told apart by the Lua that YAML
//! kept, before the ` #`:
//!
//! - it ends where an expression must follow: after an operator (`==`, `>`, `..`, `+`, `=`...),
//!   `(`, `{`, `[`, `,`, or one of the keywords `return`, `and`, `or`, `not`, `if`, `elseif`,
//!   `while`, `until`, `in`. Lua's `#` is a prefix operator only, so it can only stand where an
//!   expression starts, which is exactly there; and a chunk that ends there is unfinished
//!   anyway (or, after `return`, returns nothing). Or
//! - it ends inside a Lua string (`check: return s == "a #b"`): YAML does not know Lua's quotes.
//!
//! Anything else before ` #` (a name, a `)`, a `}`, a number, a closed string, `end`, `...`)
//! ends a complete expression or statement, and what follows is a comment. This looks at the
//! kept text only, never at the comment, so no wording of a comment can trip it.

/// What YAML cut off the Lua of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The ` #` stands where an expression must follow: Lua's length operator.
    Operator,
    /// The ` #` is inside a Lua string.
    InString,
}

/// Tokens after which a Lua expression must come.
const OPERATORS: [&str; 24] = [
    "==", "~=", "<=", ">=", "..", "//", "<<", ">>", "+", "-", "*", "/", "%", "^", "<", ">", "=",
    "(", "{", "[", ",", "&", "|", "~",
];
/// Keywords after which a Lua expression must (or, for `return`, may) come.
const KEYWORDS: [&str; 9] = [
    "return", "and", "or", "not", "if", "elseif", "while", "until", "in",
];

/// Whether the Lua text `kept`, which YAML ended at a ` #` on the same line, was cut there
/// (see the module doc). `None`: the ` #` starts a comment after complete Lua, or after a Lua
/// `--` comment.
pub(crate) fn cut(kept: &str) -> Option<Cut> {
    let code = match lua_code(kept) {
        Code::Complete(code) => code,
        Code::InString => return Some(Cut::InString),
        Code::InComment => return None,
    };
    let code = code.trim_end();
    if code.ends_with("...") {
        return None;
    }
    if OPERATORS.iter().any(|op| code.ends_with(op)) {
        return Some(Cut::Operator);
    }
    let word_start = code
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    KEYWORDS
        .contains(&&code[word_start..])
        .then_some(Cut::Operator)
}

/// What a line of Lua ends in.
enum Code<'a> {
    /// Code outside strings and comments ends the text: the text itself.
    Complete(&'a str),
    /// The text ends inside a string (quoted or long).
    InString,
    /// The text ends in a comment.
    InComment,
}

fn lua_code(text: &str) -> Code<'_> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => return Code::InComment,
            q @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Code::InString,
                        Some(b'\\') => i += 2,
                        Some(c) if *c == q => break,
                        Some(_) => i += 1,
                    }
                }
            }
            b'[' => {
                // `[[...]]` or `[==[...]==]`; a lone `[` indexes.
                let level = bytes[i + 1..].iter().take_while(|b| **b == b'=').count();
                if bytes.get(i + 1 + level) == Some(&b'[') {
                    let close = format!("]{}]", "=".repeat(level));
                    match text[i + 2 + level..].find(&close) {
                        Some(at) => i += 2 + level + at + close.len() - 1,
                        None => return Code::InString,
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Code::Complete(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_where_an_expression_must_follow() {
        for kept in [
            "return",
            "return x ==",
            "return 1 + ",
            "f(",
            "return f(a,",
            "return {",
            "return t[",
            "return ok and",
            "return not",
            "local n =",
            "return s ..",
            "return ~",
            "if x then return 1 elseif",
        ] {
            assert_eq!(cut(kept), Some(Cut::Operator), "{kept:?}");
        }
    }

    #[test]
    fn a_cut_inside_a_string() {
        for kept in [
            "return s == \"a",
            "return s == 'a",
            "return s == 'it\\'s",
            "return s == [[a",
            "return s == [==[a]]",
        ] {
            assert_eq!(cut(kept), Some(Cut::InString), "{kept:?}");
        }
    }

    #[test]
    fn a_comment_after_complete_lua() {
        for kept in [
            "return true",
            "alive(\"db\")",
            "redis.ping{port=6379}",
            "return x == \"a\"",
            "return s == [[a]]",
            "return 42",
            "return ...",
            "return x -- a Lua comment, then",
            "do return true end",
            "return my_and",
            "return t[1]",
        ] {
            assert_eq!(cut(kept), None, "{kept:?}");
        }
    }
}
