//! The free names of a chunk: which globals it reads and which it assigns, found statically,
//! so that `autoheal check` can reject a chunk that reads a global that does not exist
//! (`tcpprobe(...)`, `return redsi.ping{}`) before a tick runs it and fails.
//!
//! The parse is full_moon's (a maintained, lossless Lua parser, used by the StyLua formatter and
//! the selene linter; its `lua54` feature reads Lua 5.4: `<const>`/`<close>`, `goto`, integer
//! division, bitwise operators). Lua's own compiler resolves the same names, but mlua does not
//! show its bytecode and reading `string.dump` output by hand would be a parser of our own.
//! The chunk has already compiled with Lua when it gets here: full_moon only sees valid Lua.
//!
//! Scoping follows Lua 5.4's: a `local` is visible from the statement after its declaration
//! (`local x = x` reads the global `x`), `local function f` from its own body on, parameters
//! (and `self` of `function a:m()`) and loop variables in their body, a `repeat` block's
//! locals in its `until`; labels and `goto` name no variable; `obj:m()`, `t.k` and `{k = v}`
//! name fields, not variables. A free name is a read of `_ENV.name`: under a `local _ENV`
//! (or a parameter of that name) it reads that table, not a global.
//!
//! What it must not do: guess. A chunk it cannot judge gives `None`, and nothing is reported
//! for it: one full_moon does not parse, one larger than [`MAX_SOURCE`], one that assigns
//! `_ENV` itself (every later read goes who knows where), that assigns `_G[k]` / `_ENV[k]` or
//! calls `rawset(_G, k, ...)` with a key that is not a literal string, or that reads `load`
//! (the code it loads may define any global). Fields are not followed: `string.fromat` and
//! `M.f` of a module `M` are reads of `string` and `M` only.

use std::collections::{HashMap, HashSet};

use full_moon::ast::{
    Block, Call, Expression, Field, FunctionArgs, FunctionBody, FunctionCall, Index, LastStmt,
    Parameter, Prefix, Stmt, Suffix, TableConstructor, Var,
};
use full_moon::tokenizer::{TokenReference, TokenType};

/// A chunk longer than this is not analysed (its names are not checked): full_moon builds a
/// chain of binary operators (`1+1+...`, which Lua compiles however long) as a tree as deep
/// as the chain, and a tree deep enough overflows the stack of the parser and of the walk. At
/// this size the deepest chain is 32Ki operators, well within the stack the checker runs on
/// (`check::STACK`). No real check is a tenth as long.
pub(crate) const MAX_SOURCE: usize = 64 << 10;

/// A global the chunk reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Read {
    pub name: String,
    /// The 1-based line of its first read in the chunk.
    pub line: usize,
    /// Read as a table (`name.f`, `name:m()`, `name[k]`), as a module is.
    pub indexed: bool,
}

/// What a chunk does with globals.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Names {
    /// Each global read, once, in the order of its first read.
    pub reads: Vec<Read>,
    /// Every global assigned anywhere in the chunk (`x = 1`, `function f() end`, `_G.x = 1`,
    /// `rawset(_G, "x", 1)`), wherever the assignment stands: one assignment anywhere defines it.
    pub assigned: HashSet<String>,
    /// Every local the chunk declares, with the line of its first declaration: a global read
    /// of one of these names is most likely a read outside its scope.
    pub locals: HashMap<String, usize>,
}

/// The globals `source` reads and assigns, or `None` when that cannot be told statically (see
/// the module doc). A chunk that is one expression (`alive("db") and x`) is read as
/// `return <expression>`, as it runs.
pub(crate) fn free_names(source: &str) -> Option<Names> {
    if source.len() > MAX_SOURCE {
        return None;
    }
    let version = full_moon::LuaVersion::lua54();
    let ast = full_moon::parse_fallible(source, version)
        .into_result()
        .or_else(|_| full_moon::parse_fallible(&format!("return {source}"), version).into_result())
        .ok()?;
    let mut w = Walker::default();
    w.block(ast.nodes());
    if w.unsure {
        return None;
    }
    Some(Names {
        reads: w.reads,
        assigned: w.assigned,
        locals: w.locals,
    })
}

#[derive(Default)]
struct Walker {
    /// The locals of each open block, innermost last.
    scopes: Vec<Vec<String>>,
    reads: Vec<Read>,
    seen: HashSet<String>,
    assigned: HashSet<String>,
    locals: HashMap<String, usize>,
    /// Set when the chunk does something that makes its globals unknowable.
    unsure: bool,
}

/// The text of a name token.
fn ident(tok: &TokenReference) -> Option<&str> {
    match tok.token().token_type() {
        TokenType::Identifier { identifier } => Some(identifier.as_str()),
        _ => None,
    }
}

fn line(tok: &TokenReference) -> usize {
    tok.token().start_position().line()
}

/// The text of a literal string (`"x"`, `'x'`, `[[x]]`).
fn string_literal(e: &Expression) -> Option<&str> {
    match e {
        Expression::String(tok) => match tok.token().token_type() {
            TokenType::StringLiteral { literal, .. } => Some(literal.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// The global table, as a chunk names it: `_G` or `_ENV` (when neither is a local).
const GLOBAL_TABLES: [&str; 2] = ["_G", "_ENV"];

impl Walker {
    fn is_local(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .rev()
            .any(|s| s.iter().any(|n| n == name))
    }

    fn declare(&mut self, tok: &TokenReference) {
        match ident(tok) {
            Some(name) => {
                let name = name.to_string();
                self.locals.entry(name.clone()).or_insert_with(|| line(tok));
                if let Some(scope) = self.scopes.last_mut() {
                    scope.push(name);
                }
            }
            None => self.unsure = true,
        }
    }

    /// A name read as a variable.
    fn read(&mut self, tok: &TokenReference, indexed: bool) {
        let Some(name) = ident(tok) else {
            self.unsure = true;
            return;
        };
        if name == "_ENV" || self.is_local(name) || self.is_local("_ENV") {
            return;
        }
        if name == "load" {
            // What it loads may assign any global.
            self.unsure = true;
        }
        if self.seen.insert(name.to_string()) {
            self.reads.push(Read {
                name: name.to_string(),
                line: line(tok),
                indexed,
            });
        }
    }

    /// A name assigned as a variable (`name = ...`, `function name() end`).
    fn assign(&mut self, tok: &TokenReference) {
        let Some(name) = ident(tok) else {
            self.unsure = true;
            return;
        };
        if self.is_local(name) {
            return;
        }
        if name == "_ENV" {
            // The chunk replaces its own environment: its later reads go there.
            self.unsure = true;
            return;
        }
        self.assigned.insert(name.to_string());
    }

    /// Whether `tok` names the global table (`_G`, `_ENV`, not shadowed by a local).
    fn is_global_table(&self, tok: &TokenReference) -> bool {
        ident(tok).is_some_and(|n| GLOBAL_TABLES.contains(&n) && !self.is_local(n))
    }

    /// A block with its own scope.
    fn block(&mut self, block: &Block) {
        self.scopes.push(Vec::new());
        self.block_in_scope(block);
        self.scopes.pop();
    }

    /// The statements of a block, in the scope already open (a `repeat` block's scope also
    /// holds its `until`).
    fn block_in_scope(&mut self, block: &Block) {
        for stmt in block.stmts() {
            self.stmt(stmt);
        }
        match block.last_stmt() {
            None | Some(LastStmt::Break(_)) => {}
            Some(LastStmt::Return(r)) => {
                for e in r.returns() {
                    self.expr(e);
                }
            }
            Some(_) => self.unsure = true,
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Assignment(a) => {
                for e in a.expressions() {
                    self.expr(e);
                }
                for v in a.variables() {
                    self.assign_var(v);
                }
            }
            Stmt::LocalAssignment(l) => {
                // `local x = x`: the value is read before the name exists.
                for e in l.expressions() {
                    self.expr(e);
                }
                for name in l.names() {
                    self.declare(name);
                }
            }
            Stmt::LocalFunction(f) => {
                // Visible in its own body: it may call itself.
                self.declare(f.name());
                self.body(f.body(), false);
            }
            Stmt::FunctionDeclaration(f) => {
                let name = f.name();
                let mut names = name.names().iter();
                let method = name.method_name().is_some();
                match names.next() {
                    Some(first) if name.names().len() == 1 && !method => self.assign(first),
                    Some(first) => self.read(first, true),
                    None => self.unsure = true,
                }
                self.body(f.body(), method);
            }
            Stmt::FunctionCall(call) => self.call(call),
            Stmt::Do(d) => self.block(d.block()),
            Stmt::While(w) => {
                self.expr(w.condition());
                self.block(w.block());
            }
            Stmt::Repeat(r) => {
                // `repeat local x = ... until x`: the condition sees the block's locals.
                self.scopes.push(Vec::new());
                self.block_in_scope(r.block());
                self.expr(r.until());
                self.scopes.pop();
            }
            Stmt::If(i) => {
                self.expr(i.condition());
                self.block(i.block());
                for e in i.else_if().into_iter().flatten() {
                    self.expr(e.condition());
                    self.block(e.block());
                }
                if let Some(b) = i.else_block() {
                    self.block(b);
                }
            }
            Stmt::NumericFor(f) => {
                self.expr(f.start());
                self.expr(f.end());
                if let Some(step) = f.step() {
                    self.expr(step);
                }
                self.scopes.push(Vec::new());
                self.declare(f.index_variable());
                self.block_in_scope(f.block());
                self.scopes.pop();
            }
            Stmt::GenericFor(f) => {
                for e in f.expressions() {
                    self.expr(e);
                }
                self.scopes.push(Vec::new());
                for name in f.names() {
                    self.declare(name);
                }
                self.block_in_scope(f.block());
                self.scopes.pop();
            }
            // A label and a goto name a place, not a variable.
            Stmt::Goto(_) | Stmt::Label(_) => {}
            _ => self.unsure = true,
        }
    }

    /// A function's parameters (and `self` for `function a:m()`) and body.
    fn body(&mut self, body: &FunctionBody, method: bool) {
        self.scopes.push(if method {
            vec!["self".to_string()]
        } else {
            Vec::new()
        });
        for p in body.parameters() {
            match p {
                Parameter::Name(tok) => self.declare(tok),
                Parameter::Ellipsis(_) => {}
                _ => self.unsure = true,
            }
        }
        self.block_in_scope(body.block());
        self.scopes.pop();
    }

    fn expr(&mut self, e: &Expression) {
        match e {
            Expression::BinaryOperator { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expression::Parentheses { expression, .. }
            | Expression::UnaryOperator { expression, .. } => self.expr(expression),
            Expression::Function(f) => self.body(f.body(), false),
            Expression::FunctionCall(call) => self.call(call),
            Expression::TableConstructor(t) => self.table(t),
            Expression::Var(v) => self.read_var(v),
            // Literals, `true`, `nil`, `...`.
            Expression::Number(_) | Expression::String(_) | Expression::Symbol(_) => {}
            _ => self.unsure = true,
        }
    }

    fn table(&mut self, t: &TableConstructor) {
        for field in t.fields() {
            match field {
                Field::ExpressionKey { key, value, .. } => {
                    self.expr(key);
                    self.expr(value);
                }
                // `{port = 6379}`: `port` is a key.
                Field::NameKey { value, .. } => self.expr(value),
                Field::NoKey(value) => self.expr(value),
                _ => self.unsure = true,
            }
        }
    }

    fn args(&mut self, args: &FunctionArgs) {
        match args {
            FunctionArgs::Parentheses { arguments, .. } => {
                for a in arguments {
                    self.expr(a);
                }
            }
            FunctionArgs::String(_) => {}
            FunctionArgs::TableConstructor(t) => self.table(t),
            _ => self.unsure = true,
        }
    }

    /// The start of a chain (`name` or `(expr)`), then its suffixes.
    fn prefix<'a>(&mut self, prefix: &Prefix, mut suffixes: impl Iterator<Item = &'a Suffix>) {
        let mut first = suffixes.next();
        match prefix {
            Prefix::Name(tok) => {
                let indexed = matches!(
                    first,
                    Some(Suffix::Index(_)) | Some(Suffix::Call(Call::MethodCall(_)))
                );
                self.read(tok, indexed);
            }
            Prefix::Expression(e) => self.expr(e),
            _ => self.unsure = true,
        }
        while let Some(s) = first {
            self.suffix(s);
            first = suffixes.next();
        }
    }

    fn suffix(&mut self, s: &Suffix) {
        match s {
            Suffix::Call(Call::AnonymousCall(args)) => self.args(args),
            // `obj:m(...)`: `m` is a field of `obj`.
            Suffix::Call(Call::MethodCall(m)) => self.args(m.args()),
            Suffix::Index(Index::Brackets { expression, .. }) => self.expr(expression),
            Suffix::Index(Index::Dot { .. }) => {}
            _ => self.unsure = true,
        }
    }

    fn call(&mut self, call: &FunctionCall) {
        self.rawset_global(call);
        self.prefix(call.prefix(), call.suffixes());
    }

    /// `rawset(_G, "name", v)` assigns the global `name`; with a key that is not a literal
    /// string, any global.
    fn rawset_global(&mut self, call: &FunctionCall) {
        let Prefix::Name(f) = call.prefix() else {
            return;
        };
        if ident(f) != Some("rawset") || self.is_local("rawset") {
            return;
        }
        let Some(Suffix::Call(Call::AnonymousCall(args))) = call.suffixes().next() else {
            return;
        };
        let FunctionArgs::Parentheses { arguments, .. } = args.as_ref() else {
            return;
        };
        let mut a = arguments.iter();
        let (Some(Expression::Var(Var::Name(t))), Some(key)) = (a.next(), a.next()) else {
            return;
        };
        if self.is_global_table(t) {
            match string_literal(key) {
                Some(name) => {
                    self.assigned.insert(name.to_string());
                }
                None => self.unsure = true,
            }
        }
    }

    fn read_var(&mut self, v: &Var) {
        match v {
            Var::Name(tok) => self.read(tok, false),
            Var::Expression(ve) => self.prefix(ve.prefix(), ve.suffixes()),
            _ => self.unsure = true,
        }
    }

    /// The target of an assignment: a name is assigned; in `a.b[c] = v`, `a` and `c` are read;
    /// `_G.name = v`, `_G["name"] = v` (or `_ENV`) assign the global `name`.
    fn assign_var(&mut self, v: &Var) {
        match v {
            Var::Name(tok) => self.assign(tok),
            Var::Expression(ve) => {
                let suffixes: Vec<&Suffix> = ve.suffixes().collect();
                if let (Prefix::Name(t), [Suffix::Index(index)]) = (ve.prefix(), &suffixes[..])
                    && self.is_global_table(t)
                {
                    match index {
                        Index::Dot { name, .. } => match ident(name) {
                            Some(n) => {
                                self.assigned.insert(n.to_string());
                            }
                            None => self.unsure = true,
                        },
                        Index::Brackets { expression, .. } => match string_literal(expression) {
                            Some(n) => {
                                self.assigned.insert(n.to_string());
                            }
                            None => self.unsure = true,
                        },
                        _ => self.unsure = true,
                    }
                }
                self.prefix(ve.prefix(), ve.suffixes());
            }
            _ => self.unsure = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The globals `src` reads, as `name@line`, and those it assigns, sorted.
    fn names(src: &str) -> (Vec<String>, Vec<String>) {
        let n = free_names(src).unwrap_or_else(|| panic!("unsure about {src:?}"));
        let reads = n
            .reads
            .iter()
            .map(|r| format!("{}@{}", r.name, r.line))
            .collect();
        let mut assigned: Vec<String> = n.assigned.into_iter().collect();
        assigned.sort();
        (reads, assigned)
    }

    fn reads(src: &str) -> Vec<String> {
        names(src)
            .0
            .into_iter()
            .map(|r| r.split('@').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn one_expression_chunks_are_read_as_return_expression() {
        assert_eq!(names("redis.ping{port=6379}").0, ["redis@1"]);
        assert_eq!(
            reads("alive('db') and tcpprobe('h', 1)"),
            ["alive", "tcpprobe"]
        );
        assert_eq!(reads("return redsi.ping{port = x}"), ["redsi", "x"]);
        let n = free_names("redsi.ping{}\n").unwrap();
        assert!(n.reads[0].indexed);
        let n = free_names("tcpprobe('h', 1)").unwrap();
        assert!(!n.reads[0].indexed);
        assert!(free_names("obj:m()").unwrap().reads[0].indexed);
    }

    #[test]
    fn locals_are_not_globals_from_the_statement_after_theirs() {
        assert_eq!(reads("local x = 1\nreturn x"), Vec::<String>::new());
        // The value of `local x = x` is read before `x` exists.
        assert_eq!(names("local x = x\nreturn x").0, ["x@1"]);
        // A read before the declaration is a global read.
        assert_eq!(reads("local a = y\nlocal y = 2\nreturn y"), ["y"]);
        assert_eq!(
            reads("local a <const>, b <close> = 1, nil\nreturn a + b"),
            [""; 0]
        );
    }

    #[test]
    fn a_local_shadowing_a_global_name_is_not_a_global_read() {
        assert_eq!(reads("local tcp_probe = 1\nreturn tcp_probe"), [""; 0]);
        assert_eq!(
            reads("local function string() end\nreturn string.len"),
            [""; 0]
        );
    }

    #[test]
    fn scopes_end_with_their_block() {
        assert_eq!(
            names("do local x = 1 end\nreturn x").0,
            ["x@2"],
            "a do block's local"
        );
        assert_eq!(
            reads("if c then local x = 1 elseif d then return x else local y end\nreturn y"),
            ["c", "d", "x", "y"]
        );
        assert_eq!(reads("while w do local x end\nreturn x"), ["w", "x"]);
    }

    #[test]
    fn parameters_and_nested_functions() {
        assert_eq!(
            reads("local function f(a, b)\n  return a + b + c\nend\nreturn f(1, 2)"),
            ["c"]
        );
        // A local function sees itself; an anonymous one assigned to a local does not.
        assert_eq!(
            reads("local function fact(n) return n < 2 and 1 or n * fact(n - 1) end"),
            [""; 0]
        );
        assert_eq!(reads("local g = function() return g end"), ["g"]);
        // Upvalues of enclosing functions.
        assert_eq!(
            reads(
                "local x = 1\nlocal function outer(p)\n  return function(q) return x + p + q + r end\nend"
            ),
            ["r"]
        );
        // Parameters end with their function.
        assert_eq!(reads("local function f(a) end\nreturn a"), ["a"]);
        // `function t:m()` has `self`; `function t.f()` reads `t`.
        assert_eq!(
            reads("local t = {}\nfunction t:m(v) return self.x + v end\nfunction u.f() end"),
            ["u"]
        );
    }

    #[test]
    fn varargs_are_no_name() {
        assert_eq!(
            reads("local function f(...) return select('#', ...) end\nreturn ..."),
            ["select"]
        );
    }

    #[test]
    fn locals_are_listed_with_their_line() {
        let n = free_names("local a = 1\nfor i = 1, 2 do local a end\nreturn i").unwrap();
        assert_eq!(n.locals.get("a"), Some(&1));
        assert_eq!(n.locals.get("i"), Some(&2));
        assert_eq!(n.reads[0].name, "i");
    }

    #[test]
    fn loop_variables_live_in_their_loop() {
        assert_eq!(
            reads("for i = 1, n do local s = i end\nreturn i"),
            ["n", "i"]
        );
        assert_eq!(
            reads("for k, v in pairs(t) do print(k, v) end\nreturn k"),
            ["pairs", "t", "print", "k"]
        );
        // The limits of a numeric for are read outside the loop.
        assert_eq!(reads("for i = i, i do end"), ["i"]);
    }

    #[test]
    fn repeat_until_sees_the_locals_of_its_block() {
        assert_eq!(
            reads("repeat local done = step() until done\nreturn done"),
            ["step", "done"]
        );
    }

    #[test]
    fn goto_labels_are_no_names() {
        assert_eq!(
            reads("for i = 1, 3 do\n  if i == 2 then goto continue end\n  ::continue::\nend"),
            [""; 0]
        );
    }

    #[test]
    fn fields_keys_and_methods_are_no_names() {
        assert_eq!(
            reads("local r = {port = 6379, [k] = 1}\nreturn r.port, r:upper(), s:lower(), t[u]"),
            ["k", "s", "t", "u"]
        );
        assert_eq!(names("return string.fromat('%d', 1)").0, ["string@1"]);
    }

    #[test]
    fn assignments_anywhere_define_globals() {
        assert_eq!(
            names("count = 0\nfunction bump() count = count + 1 end\nreturn bump()"),
            (
                vec!["count@2".to_string(), "bump@3".to_string()],
                vec!["bump".to_string(), "count".to_string()]
            )
        );
        // An assignment to a local is no global.
        assert_eq!(names("local x\nx = 1\nreturn x").1, [""; 0]);
        // Through the global table.
        let (_, assigned) = names("_G.a = 1\n_ENV['b'] = 2\nrawset(_G, 'c', 3)\nreturn a");
        assert_eq!(assigned, ["a", "b", "c"]);
    }

    #[test]
    fn a_local_env_holds_the_free_names() {
        assert_eq!(
            reads("local _ENV = {x = 1}\nreturn x + y"),
            [""; 0],
            "reads of a local _ENV's fields"
        );
        assert_eq!(
            reads("local function f(_ENV) return x end\nreturn y"),
            ["y"]
        );
        assert_eq!(reads("return _ENV.x, _G.y"), ["_G"]);
    }

    #[test]
    fn what_cannot_be_told_statically_is_left_alone() {
        for src in [
            "_ENV = {}\nreturn x",
            "_G[name] = 1\nreturn x",
            "rawset(_ENV, k, 1)\nreturn x",
            "load('x = 1')()\nreturn x",
            "return (",
        ] {
            assert_eq!(free_names(src), None, "{src:?}");
        }
        assert_eq!(free_names(&"x = 1\n".repeat(MAX_SOURCE / 6 + 1)), None);
        // `_ENV` as a local is fine.
        assert!(free_names("local _ENV = {}\n_ENV = {}\nreturn x").is_some());
    }

    #[test]
    fn lua_5_4_syntax_parses() {
        assert_eq!(
            reads(
                "local a <const> = 7 // 2\nlocal b = a << 1 | a & ~a\nreturn math.type(b), utf8.char(72)"
            ),
            ["math", "utf8"]
        );
    }
}
