//! `dynostats clickhouse schema|init`: the tables records are loaded into
//! (`dynostats::clickhouse::Schema`), printed or made on a server.

use dynostats::clickhouse::{Client, Dialect, Schema, Server};

use crate::{EXIT_IO, EXIT_OK, EXIT_REFUSED, EXIT_USAGE};

/// The arguments of `dynostats clickhouse`.
#[derive(clap::Args)]
pub(crate) struct ClickhouseArgs {
    #[command(subcommand)]
    command: ClickhouseCommand,
}

#[derive(clap::Subcommand)]
enum ClickhouseCommand {
    /// Prints the DDL: raw tables (records, profile_nodes, status), the
    /// load bookkeeping, the rollup and its materialized view.
    #[command(
        after_help = "EXAMPLES:\n  dynostats clickhouse schema --ttl 14 > dynostats.sql\n  \
        dynostats clickhouse schema --cluster fleet --database perf\n  \
        dynostats clickhouse schema --compat 18.16"
    )]
    Schema(SchemaOptions),
    /// Runs the DDL on a server (the dialect from the server's version
    /// unless --compat is given). Statements that exist already are kept:
    /// on a database of schema version 2 or 3 it adds what came since (the
    /// rollup's sketches in version 3; two profile_nodes columns and the
    /// functions' rollup in version 4); --backfill then makes the sketches
    /// for the records loaded before.
    #[command(
        after_help = "EXAMPLES:\n  dynostats clickhouse init --clickhouse http://127.0.0.1:8123/\n  \
        dynostats clickhouse init --backfill --clickhouse http://127.0.0.1:8123/"
    )]
    Init(InitArgs),
}

/// Where and how the tables are made.
#[derive(clap::Args)]
pub(crate) struct SchemaOptions {
    /// The database.
    #[arg(long, value_name = "DB", default_value = "dynostats")]
    database: String,
    /// A cluster (remote_servers name): ReplicatedMergeTree shard tables
    /// (`*_local`) and Distributed tables over them, ON CLUSTER.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// With --cluster: shards without replicas (MergeTree shard tables, no
    /// ON CLUSTER: run the statements on every server).
    #[arg(long, requires = "cluster")]
    without_replication: bool,
    /// Days raw rows are kept (`none`: until dropped by hand).
    #[arg(long, value_name = "DAYS", default_value = "30", value_parser = parse_days)]
    ttl: Days,
    /// Days the rollup is kept (`none`: for ever).
    #[arg(long, value_name = "DAYS", default_value = "400", value_parser = parse_days)]
    rollup_ttl: Days,
    /// For an old server: `18.16` (raw tables only, no rollup, no TTL).
    #[arg(long, value_name = "VERSION", value_parser = ["18.16"])]
    compat: Option<String>,
}

/// A retention in days, or none.
#[derive(Clone, Copy)]
struct Days(Option<u32>);

fn parse_days(s: &str) -> Result<Days, String> {
    if s == "none" {
        return Ok(Days(None));
    }
    match s.parse::<u32>() {
        Ok(0) => {
            Err("0 days would drop every row as it is inserted: give 1 or more, or none".into())
        }
        Ok(n) => Ok(Days(Some(n))),
        Err(_) => Err(format!("{s:?} is not a number of days (or none)")),
    }
}

impl SchemaOptions {
    fn schema(&self, dialect: Dialect) -> Result<Schema, String> {
        let mut schema = Schema::new()
            .database(&self.database)
            .ttl_days(self.ttl.0)
            .rollup_ttl_days(self.rollup_ttl.0)
            .dialect(dialect);
        if let Some(c) = &self.cluster {
            schema = schema.cluster(c);
            if self.without_replication {
                schema = schema.without_replication();
            }
        }
        schema.check()?;
        Ok(schema)
    }

    fn dialect(&self) -> Option<Dialect> {
        self.compat.as_ref().map(|_| Dialect::Compat1816)
    }
}

/// The arguments of `dynostats clickhouse init`.
#[derive(clap::Args)]
pub(crate) struct InitArgs {
    /// The server's HTTP interface: http://[user[:password]@]host:port/
    /// (user and password also from CLICKHOUSE_USER, CLICKHOUSE_PASSWORD).
    #[arg(long, value_name = "URL")]
    clickhouse: String,
    #[command(flatten)]
    schema: SchemaOptions,
    /// After the DDL: makes the rollup's sketches (`rollup_sketch`) of
    /// the records loaded before the upgrade to schema version 3, from
    /// the raw rows still kept (their rows up to the hour after the
    /// upgrade are deleted and made again). On a cluster, run it on one
    /// server of every shard.
    #[arg(long)]
    backfill: bool,
}

/// The dialect of a server of `version`.
pub(crate) fn dialect_of(version: (u32, u32)) -> Dialect {
    if version < (22, 8) {
        Dialect::Compat1816
    } else {
        Dialect::Current
    }
}

/// Runs `dynostats clickhouse` and returns the exit status.
pub(crate) fn run(args: &ClickhouseArgs) -> u8 {
    match &args.command {
        ClickhouseCommand::Schema(opts) => match opts.schema(opts.dialect().unwrap_or_default()) {
            Ok(schema) => {
                print!("{}", schema.sql());
                EXIT_OK
            }
            Err(e) => {
                eprintln!("dynostats: {e}");
                EXIT_USAGE
            }
        },
        ClickhouseCommand::Init(init) => run_init(init),
    }
}

/// A client for `--clickhouse URL`, or the exit status of a bad URL
/// (said on standard error).
pub(crate) fn client(url: &str) -> Result<Client, u8> {
    match Server::parse(url) {
        Ok(server) => Ok(Client::new(server)),
        Err(e) => {
            eprintln!("dynostats: {e}");
            Err(EXIT_USAGE)
        }
    }
}

fn run_init(args: &InitArgs) -> u8 {
    let client = match client(&args.clickhouse) {
        Ok(c) => c,
        Err(status) => return status,
    };
    let dialect = match args.schema.dialect() {
        Some(d) => d,
        None => match client.version() {
            Ok(v) => dialect_of(v),
            Err(e) => return refused(&e),
        },
    };
    let schema = match args.schema.schema(dialect) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dynostats: {e}");
            return EXIT_USAGE;
        }
    };
    // Columns of a later schema version on tables made before go first:
    // the views made after read them.
    let existing = match client.columns(schema.database_name()) {
        Ok(tables) => tables,
        Err(e) => return refused(&e),
    };
    let upgrades = schema.column_upgrades(&|table| existing.get(table).cloned());
    for statement in upgrades.into_iter().chain(schema.statements()) {
        if let Err(e) = client.query(&statement.sql) {
            eprintln!("dynostats: making {}: {e}", statement.makes);
            return refused(&e);
        }
    }
    if dialect == Dialect::Current {
        if let Err(e) = upgrade_collector_view(&client, &schema) {
            eprintln!("dynostats: making records_in_profile_nodes of schema version 4: {e}");
            return refused(&e);
        }
    }
    if args.backfill {
        if dialect != Dialect::Current {
            eprintln!("dynostats: --backfill: ClickHouse 18.16 has no rollup to fill");
            return EXIT_USAGE;
        }
        if let Err(status) = backfill(&client, &schema) {
            return status;
        }
    }
    eprintln!(
        "dynostats: schema version {} in database {} on {} ({})",
        dynostats::clickhouse::SCHEMA_VERSION,
        schema.database_name(),
        client.server(),
        match dialect {
            Dialect::Compat1816 =>
                "ClickHouse 18.16 dialect: raw tables only, no rollup, no TTL \
                 (drop old partitions by hand, see docs/clickhouse.md)",
            _ => "raw tables and rollup",
        }
    );
    EXIT_OK
}

/// Gives the collector tier's view into `profile_nodes`, when it was made
/// before schema version 4 (its query writes no `scope_first`), this
/// release's query in place (`Schema::collector_view_upgrade`): a view
/// kept as it was would go on writing profile rows without their amounts
/// per function, and one dropped and made again would lose what is
/// inserted meanwhile.
fn upgrade_collector_view(
    client: &Client,
    schema: &Schema,
) -> Result<(), dynostats::clickhouse::ClickHouseError> {
    // The database is an identifier (`Schema::check`).
    let db = schema.database_name();
    let query = client.query(&format!(
        "SELECT create_table_query FROM system.tables WHERE database = '{db}' \
         AND name = 'records_in_profile_nodes' FORMAT TabSeparatedRaw"
    ))?;
    if query.trim().is_empty() || query.contains("scope_first") {
        return Ok(());
    }
    // Current servers take `MODIFY QUERY` without it; 22.8 to 23.x ask
    // for it.
    let setting = "allow_experimental_alter_materialized_view_structure";
    let has = client.query(&format!(
        "SELECT count() FROM system.settings WHERE name = '{setting}'"
    ))?;
    let settings: Vec<(&str, &str)> = if has.trim() == "1" {
        vec![(setting, "1")]
    } else {
        Vec::new()
    };
    client.query_with(&schema.collector_view_upgrade().sql, &settings)?;
    eprintln!(
        "dynostats: {db}.records_in_profile_nodes now writes each profile record's amounts \
         per function (schema version 4)"
    );
    Ok(())
}

/// Makes the sketches of the records loaded before the upgrade to schema
/// version 3: up to the hour after the first version-3 row of
/// `schema_version` was written (records inserted since went through the
/// view; those of that hour before it did not).
fn backfill(client: &Client, schema: &Schema) -> Result<(), u8> {
    let db = schema.database_name();
    let sql = format!(
        "SELECT toString((intDiv(toUInt32(min(applied)), {hour}) + 1) * {hour}) \
         FROM {db}.schema_version WHERE version >= 3",
        hour = Schema::SKETCH_BUCKET_SECONDS
    );
    let until = match client.query(&sql) {
        Ok(s) => s.trim().parse::<u64>().map_err(|_| {
            eprintln!("dynostats: --backfill: the upgrade's time in {db}.schema_version: {s:?}");
            EXIT_REFUSED
        })?,
        Err(e) => return Err(refused(&e)),
    };
    for statement in schema.sketch_backfill(until) {
        if let Err(e) = client.query(&statement.sql) {
            eprintln!("dynostats: --backfill: making {}: {e}", statement.makes);
            return Err(refused(&e));
        }
    }
    eprintln!(
        "dynostats: backfilled {db}.rollup_sketch from the raw records before {}",
        dynostats::report::output::utc(until * 1_000_000_000)
    );
    Ok(())
}

/// Says `e` and returns its exit status: 1 when the server could not be
/// reached, 6 when it refused.
pub(crate) fn refused(e: &dynostats::clickhouse::ClickHouseError) -> u8 {
    eprintln!("dynostats: {e}");
    if matches!(e, dynostats::clickhouse::ClickHouseError::Connect(_)) {
        EXIT_IO
    } else {
        EXIT_REFUSED
    }
}
