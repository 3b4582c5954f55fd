//! Multi-row statements: bound values of mixed types, `$n` placeholders that both backends
//! understand, and chunking into statements of at most [`ParamLimit::MAX_PARAMS`] bound values.
use crate::TenantScope;
use serde_json::Value;

/// Bound parameters per statement, per backend.
pub(crate) trait ParamLimit {
    const MAX_PARAMS: usize;
}

/// Far under SQLite's limit (32766) on purpose: SQLite finds a numbered parameter's name by walking
/// a list of all of them, and sqlx asks for every parameter's name, so preparing a statement costs
/// time quadratic in its parameters (a 30,000-value statement took seconds; thirty of 1,000 take a
/// fraction of one).
impl ParamLimit for sqlx::SqlitePool {
    const MAX_PARAMS: usize = 1_000;
}

/// PostgreSQL allows 65535 and prepares in linear time; every statement is a round trip, so fewer,
/// bigger ones (a first import of 100,000 agents is ~100 statements, not ~2,000).
impl ParamLimit for sqlx::PgPool {
    const MAX_PARAMS: usize = 20_000;
}

/// Rows per statement on the pool's backend when each row binds `per_row` values.
pub(crate) fn rows_per_chunk<P: ParamLimit>(_pool: &P, per_row: usize) -> usize {
    (P::MAX_PARAMS / per_row.max(1)).max(1)
}

/// One bound value. Bound in order by [`bind_args!`].
#[derive(Clone, Debug)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Json(&'a Value),
    Strings(&'a [String]),
}

/// SQL text plus the values its `$n` placeholders stand for.
#[derive(Debug, Default)]
pub(crate) struct Sql<'a> {
    pub text: String,
    pub args: Vec<Arg<'a>>,
}

impl<'a> Sql<'a> {
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Appends raw SQL.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// Appends a placeholder for `arg`.
    pub fn bind(&mut self, arg: Arg<'a>) -> &mut Self {
        self.args.push(arg);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// The placeholder of an already bound value, to use it again.
    pub fn placeholder_of(&self, index: usize) -> String {
        format!("${}", index + 1)
    }

    /// Appends `AND <expr> IN (...)` for a limited scope; nothing for all tenants.
    pub fn scope(&mut self, expr: &str, scope: &'a TenantScope) -> &mut Self {
        if let TenantScope::Only(ids) = scope {
            if ids.is_empty() {
                self.push(" AND 1 = 0");
            } else {
                self.push(" AND ").push(expr).push(" IN (");
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.bind(Arg::Int(*id));
                }
                self.push(")");
            }
        }
        self
    }
}

/// Binds every [`Arg`] of `$args` to the query `$q`, whichever backend it is for.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args.iter() {
            q = match a {
                $crate::batch::Arg::Int(v) => q.bind(*v),
                $crate::batch::Arg::OptInt(v) => q.bind(*v),
                $crate::batch::Arg::Text(v) => q.bind(*v),
                $crate::batch::Arg::OptText(v) => q.bind(*v),
                $crate::batch::Arg::Json(v) => q.bind(::sqlx::types::Json(*v)),
                $crate::batch::Arg::Strings(v) => q.bind(::sqlx::types::Json(*v)),
            };
        }
        q
    }};
}

/// `%text%` for LIKE with `\` as the escape character.
pub(crate) fn like_substring(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
