//! Multi-row statements: bound values of mixed types, `$n` placeholders that both backends
//! understand, and chunking into statements of at most [`ParamLimit::MAX_PARAMS`] bound values.
use crate::TenantScope;
use serde_json::Value;

/// Bound parameters per statement, per backend.
pub(crate) trait ParamLimit {
    const MAX_PARAMS: usize;
}

/// Under SQLite's limit (32766) with room for values a statement uses more than once (they are
/// bound once per use, see [`Placeholders`]).
impl ParamLimit for sqlx::SqlitePool {
    const MAX_PARAMS: usize = 4_000;
}

/// PostgreSQL allows 65535 and prepares in linear time; every statement is a round trip, so fewer,
/// bigger ones (a first import of 100,000 agents is ~100 statements, not ~2,000).
impl ParamLimit for sqlx::PgPool {
    const MAX_PARAMS: usize = 20_000;
}

/// A transaction that will write. On SQLite it takes the write lock at BEGIN (`IMMEDIATE`): a
/// deferred one that reads first cannot upgrade once another connection has written meanwhile
/// (SQLITE_BUSY_SNAPSHOT, not retried by the busy timeout), which the sync's writer task and its
/// progress updates would otherwise hit.
pub(crate) trait WriteTx {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl WriteTx for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl WriteTx for sqlx::PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin()
    }
}

/// An open write transaction on either backend, for store methods made of several writes that
/// must land together (a computer and the link that explains it, a decision and what it did).
/// [`with_tx!`] runs one body against whichever it is, as [`with_db!`] does for pools.
pub(crate) enum WriteTxn {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

macro_rules! with_tx {
    ($tx:expr, |$t:ident| $body:expr) => {
        match $tx {
            $crate::batch::WriteTxn::Sqlite($t) => $body,
            $crate::batch::WriteTxn::Postgres($t) => $body,
        }
    };
}

/// What an INSERT that names the id column needs on this backend: PostgreSQL's ids are
/// `GENERATED ALWAYS AS IDENTITY`, so an id reserved from the sequence must say so.
pub(crate) fn overriding_identity(tx: &WriteTxn) -> &'static str {
    match tx {
        WriteTxn::Sqlite(_) => "",
        WriteTxn::Postgres(_) => " OVERRIDING SYSTEM VALUE",
    }
}

impl crate::Db {
    pub(crate) async fn begin_write_txn(&self) -> crate::StoreResult<WriteTxn> {
        Ok(match &self.pool {
            crate::Pool::Sqlite(p) => WriteTxn::Sqlite(p.begin_write().await?),
            crate::Pool::Postgres(p) => WriteTxn::Postgres(p.begin_write().await?),
        })
    }
}

impl From<sqlx::Transaction<'static, sqlx::Sqlite>> for WriteTxn {
    fn from(t: sqlx::Transaction<'static, sqlx::Sqlite>) -> Self {
        WriteTxn::Sqlite(t)
    }
}

impl From<sqlx::Transaction<'static, sqlx::Postgres>> for WriteTxn {
    fn from(t: sqlx::Transaction<'static, sqlx::Postgres>) -> Self {
        WriteTxn::Postgres(t)
    }
}

impl WriteTxn {
    pub(crate) async fn commit(self) -> crate::StoreResult<()> {
        match self {
            WriteTxn::Sqlite(t) => t.commit().await?,
            WriteTxn::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

impl ParamLimit for sqlx::Transaction<'_, sqlx::Sqlite> {
    const MAX_PARAMS: usize = <sqlx::SqlitePool as ParamLimit>::MAX_PARAMS;
}

impl ParamLimit for sqlx::Transaction<'_, sqlx::Postgres> {
    const MAX_PARAMS: usize = <sqlx::PgPool as ParamLimit>::MAX_PARAMS;
}

impl Placeholders for sqlx::Transaction<'_, sqlx::Sqlite> {
    fn render<'a>(&self, sql: &Sql<'a>) -> (String, Vec<Arg<'a>>) {
        anonymous_placeholders(sql)
    }
}

impl Placeholders for sqlx::Transaction<'_, sqlx::Postgres> {
    fn render<'a>(&self, sql: &Sql<'a>) -> (String, Vec<Arg<'a>>) {
        (sql.text.clone(), sql.args.clone())
    }
}

/// Rows per statement on the pool's backend when each row binds `per_row` values.
pub(crate) fn rows_per_chunk<P: ParamLimit>(_pool: &P, per_row: usize) -> usize {
    (P::MAX_PARAMS / per_row.max(1)).max(1)
}

/// One bound value, bound by [`bind_args!`].
#[derive(Clone, Debug)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Json(&'a Value),
    /// JSON text serialised already.
    RawJson(&'a serde_json::value::RawValue),
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

    /// Appends a placeholder for each value, separated by commas (the inside of `IN (...)`).
    pub fn bind_list(&mut self, args: impl IntoIterator<Item = Arg<'a>>) -> &mut Self {
        for (i, a) in args.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(a);
        }
        self
    }

    /// Appends `AND <expr> IN (...)` for a limited scope; nothing for all tenants.
    pub fn scope(&mut self, expr: &str, scope: &'a TenantScope) -> &mut Self {
        if let TenantScope::Only(ids) = scope {
            if ids.is_empty() {
                self.push(" AND 1 = 0");
            } else {
                self.push(" AND ").push(expr).push(" IN (");
                self.bind_list(ids.iter().map(|id| Arg::Int(*id)));
                self.push(")");
            }
        }
        self
    }
}

/// How a backend wants its placeholders: `$n` as written, or rewritten.
pub(crate) trait Placeholders {
    /// The statement text and its values in the order the backend binds them.
    fn render<'a>(&self, sql: &Sql<'a>) -> (String, Vec<Arg<'a>>);
}

impl Placeholders for sqlx::PgPool {
    fn render<'a>(&self, sql: &Sql<'a>) -> (String, Vec<Arg<'a>>) {
        (sql.text.clone(), sql.args.clone())
    }
}

/// SQLite gets anonymous `?` placeholders, a value bound once per use. With numbered ones, sqlx
/// looks each parameter's name up through SQLite's list of all of them, which made binding a
/// statement cost time quadratic in its parameters (the top entry of a sync's profile).
impl Placeholders for sqlx::SqlitePool {
    fn render<'a>(&self, sql: &Sql<'a>) -> (String, Vec<Arg<'a>>) {
        anonymous_placeholders(sql)
    }
}

/// Rewrites `$n` to `?` outside quoted literals, repeating values used more than once.
pub(crate) fn anonymous_placeholders<'a>(sql: &Sql<'a>) -> (String, Vec<Arg<'a>>) {
    let bytes = sql.text.as_bytes();
    let mut text = String::with_capacity(sql.text.len());
    let mut args = Vec::with_capacity(sql.args.len());
    let mut quoted = false;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' {
            quoted = !quoted;
        } else if b == b'$' && !quoted {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits > 0 {
                let n: usize = sql.text[i + 1..i + 1 + digits].parse().unwrap_or(0);
                if let Some(a) = n.checked_sub(1).and_then(|k| sql.args.get(k)) {
                    text.push_str(&sql.text[start..i]);
                    text.push('?');
                    args.push(a.clone());
                    i += 1 + digits;
                    start = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    text.push_str(&sql.text[start..]);
    (text, args)
}

/// Builds the query `$ctor` (such as `sqlx::query_as::<_, Row>`) from a [`Sql`] and binds its
/// values, in the placeholder style of the pool `$pool`.
macro_rules! bind_args {
    ($pool:expr, $ctor:expr, $sql:expr) => {{
        let (text, args) = $crate::batch::Placeholders::render($pool, &$sql);
        let mut q = $ctor(::sqlx::AssertSqlSafe(text));
        for a in args {
            q = match a {
                $crate::batch::Arg::Int(v) => q.bind(v),
                $crate::batch::Arg::OptInt(v) => q.bind(v),
                $crate::batch::Arg::Text(v) => q.bind(v),
                $crate::batch::Arg::OptText(v) => q.bind(v),
                $crate::batch::Arg::Json(v) => q.bind(::sqlx::types::Json(v)),
                $crate::batch::Arg::RawJson(v) => q.bind(::sqlx::types::Json(v)),
                $crate::batch::Arg::Strings(v) => q.bind(::sqlx::types::Json(v)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_anonymous_ones_with_repeated_values() {
        let mut sql = Sql::new("SELECT $1, ");
        sql.args.push(Arg::Int(7));
        sql.bind(Arg::Text("a")).push(", '$1 stays', $1, $10x");
        let (text, args) = anonymous_placeholders(&sql);
        assert_eq!(text, "SELECT ?, ?, '$1 stays', ?, $10x");
        let shown: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        assert_eq!(shown, ["Int(7)", "Text(\"a\")", "Int(7)"]);
    }
}
