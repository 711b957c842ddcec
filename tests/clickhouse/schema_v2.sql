-- dynostats schema version 2 (current ClickHouse); see docs/clickhouse.md

-- database
CREATE DATABASE IF NOT EXISTS dynostats;

-- schema_version
CREATE TABLE IF NOT EXISTS dynostats.schema_version (version UInt32, applied DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY tuple();

-- records
CREATE TABLE IF NOT EXISTS dynostats.records (
    ts UInt64 CODEC(Delta, ZSTD(1)),
    time DateTime MATERIALIZED toDateTime(intDiv(ts, 1000000000)),
    kind LowCardinality(String),
    name LowCardinality(String),
    method LowCardinality(String),
    status Nullable(UInt16),
    host LowCardinality(String),
    build LowCardinality(String),
    label_keys Array(LowCardinality(String)),
    label_values Array(String),
    weight UInt64,
    wall_ns UInt64,
    cpu_ns Nullable(UInt64),
    instructions Nullable(UInt64),
    cycles Nullable(UInt64),
    page_faults Nullable(UInt64),
    context_switches Nullable(UInt64),
    rss_start Nullable(UInt64),
    rss_end Nullable(UInt64),
    peak_rss Nullable(UInt64),
    polls Nullable(UInt64),
    threads Nullable(UInt64),
    source LowCardinality(String),
    scaled UInt8,
    cancelled UInt8,
    forced UInt8,
    error LowCardinality(String),
    pid UInt32,
    id Nullable(UInt64),
    trace_id String,
    span_id String,
    v UInt8
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (kind, name, build, time)
TTL time + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- profile_nodes
CREATE TABLE IF NOT EXISTS dynostats.profile_nodes (
    ts UInt64 CODEC(Delta, ZSTD(1)),
    time DateTime MATERIALIZED toDateTime(intDiv(ts, 1000000000)),
    kind LowCardinality(String),
    name LowCardinality(String),
    method LowCardinality(String),
    status Nullable(UInt16),
    host LowCardinality(String),
    build LowCardinality(String),
    label_keys Array(LowCardinality(String)),
    label_values Array(String),
    weight UInt64,
    forced UInt8,
    cancelled UInt8,
    error LowCardinality(String),
    source LowCardinality(String),
    scaled UInt8,
    pid UInt32,
    id Nullable(UInt64),
    trace_id String,
    span_id String,
    timer LowCardinality(String),
    timer_requested LowCardinality(String),
    node UInt32,
    parent Nullable(UInt32),
    depth UInt16,
    scope LowCardinality(String),
    path Array(LowCardinality(String)),
    calls UInt64,
    inclusive Int64,
    exclusive Int64,
    recursive UInt8,
    total Nullable(Int64),
    overhead Int64,
    stat_names Array(LowCardinality(String)),
    stat_values Array(UInt64),
    v UInt8
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (name, build, time, scope)
TTL time + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- status
CREATE TABLE IF NOT EXISTS dynostats.status (
    ts UInt64 CODEC(Delta, ZSTD(1)),
    time DateTime MATERIALIZED toDateTime(intDiv(ts, 1000000000)),
    name LowCardinality(String),
    host LowCardinality(String),
    build LowCardinality(String),
    label_keys Array(LowCardinality(String)),
    label_values Array(String),
    pid UInt32,
    source LowCardinality(String),
    sink LowCardinality(String),
    counter_names Array(LowCardinality(String)),
    counter_states Array(String),
    source_names Array(LowCardinality(String)),
    source_values Array(LowCardinality(String)),
    stat_names Array(LowCardinality(String)),
    stat_values Array(UInt64),
    sink_names Array(LowCardinality(String)),
    sink_stats Array(LowCardinality(String)),
    sink_values Array(UInt64),
    error_sinks Array(LowCardinality(String)),
    error_texts Array(String),
    v UInt8
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (host, time)
TTL time + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- loads
CREATE TABLE IF NOT EXISTS dynostats.loads (
    file String,
    records UInt64,
    rows UInt64,
    time DateTime DEFAULT now()
) ENGINE = MergeTree
ORDER BY (file, records);

-- rollup
CREATE TABLE IF NOT EXISTS dynostats.rollup (
    kind LowCardinality(String),
    name LowCardinality(String),
    method LowCardinality(String),
    build LowCardinality(String),
    bucket DateTime,
    samples SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt128),
    cancelled SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    forced SimpleAggregateFunction(sum, UInt64),
    scaled SimpleAggregateFunction(sum, UInt64),
    instructions_samples SimpleAggregateFunction(sum, UInt64),
    instructions_events SimpleAggregateFunction(sum, UInt128),
    instructions_absent SimpleAggregateFunction(sum, UInt64),
    instructions_n SimpleAggregateFunction(sum, UInt64),
    instructions_sum SimpleAggregateFunction(sum, Int256),
    instructions_sum_sq SimpleAggregateFunction(sum, Int256),
    instructions_w2 SimpleAggregateFunction(sum, Int256),
    instructions_w2_sum SimpleAggregateFunction(sum, Int256),
    instructions_w2_sum_sq SimpleAggregateFunction(sum, Int256),
    instructions_sketch AggregateFunction(sumMap, Array(Int16), Array(UInt64)),
    cycles_samples SimpleAggregateFunction(sum, UInt64),
    cycles_events SimpleAggregateFunction(sum, UInt128),
    cycles_absent SimpleAggregateFunction(sum, UInt64),
    cycles_n SimpleAggregateFunction(sum, UInt64),
    cycles_sum SimpleAggregateFunction(sum, Int256),
    cycles_sum_sq SimpleAggregateFunction(sum, Int256),
    cycles_w2 SimpleAggregateFunction(sum, Int256),
    cycles_w2_sum SimpleAggregateFunction(sum, Int256),
    cycles_w2_sum_sq SimpleAggregateFunction(sum, Int256),
    cycles_sketch AggregateFunction(sumMap, Array(Int16), Array(UInt64)),
    cpu_ns_samples SimpleAggregateFunction(sum, UInt64),
    cpu_ns_events SimpleAggregateFunction(sum, UInt128),
    cpu_ns_absent SimpleAggregateFunction(sum, UInt64),
    cpu_ns_n SimpleAggregateFunction(sum, UInt64),
    cpu_ns_sum SimpleAggregateFunction(sum, Int256),
    cpu_ns_sum_sq SimpleAggregateFunction(sum, Int256),
    cpu_ns_w2 SimpleAggregateFunction(sum, Int256),
    cpu_ns_w2_sum SimpleAggregateFunction(sum, Int256),
    cpu_ns_w2_sum_sq SimpleAggregateFunction(sum, Int256),
    cpu_ns_sketch AggregateFunction(sumMap, Array(Int16), Array(UInt64)),
    wall_ns_samples SimpleAggregateFunction(sum, UInt64),
    wall_ns_events SimpleAggregateFunction(sum, UInt128),
    wall_ns_absent SimpleAggregateFunction(sum, UInt64),
    wall_ns_n SimpleAggregateFunction(sum, UInt64),
    wall_ns_sum SimpleAggregateFunction(sum, Int256),
    wall_ns_sum_sq SimpleAggregateFunction(sum, Int256),
    wall_ns_w2 SimpleAggregateFunction(sum, Int256),
    wall_ns_w2_sum SimpleAggregateFunction(sum, Int256),
    wall_ns_w2_sum_sq SimpleAggregateFunction(sum, Int256),
    wall_ns_sketch AggregateFunction(sumMap, Array(Int16), Array(UInt64)),
    rss_change_samples SimpleAggregateFunction(sum, UInt64),
    rss_change_events SimpleAggregateFunction(sum, UInt128),
    rss_change_absent SimpleAggregateFunction(sum, UInt64),
    rss_change_n SimpleAggregateFunction(sum, UInt64),
    rss_change_sum SimpleAggregateFunction(sum, Int256),
    rss_change_sum_sq SimpleAggregateFunction(sum, Int256),
    rss_change_w2 SimpleAggregateFunction(sum, Int256),
    rss_change_w2_sum SimpleAggregateFunction(sum, Int256),
    rss_change_w2_sum_sq SimpleAggregateFunction(sum, Int256),
    rss_change_sketch AggregateFunction(sumMap, Array(Int16), Array(UInt64))
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (kind, name, build, method, bucket)
TTL bucket + INTERVAL 400 DAY;

-- rollup_mv
CREATE MATERIALIZED VIEW IF NOT EXISTS dynostats.rollup_mv TO dynostats.rollup AS SELECT kind, name, method, build, toStartOfMinute(time) AS bucket, countIf(r.forced = 0) AS samples, sumIf(toUInt128(weight), r.forced = 0) AS events, countIf(r.forced = 0 AND r.cancelled = 1) AS cancelled, countIf(r.forced = 0 AND r.error != '') AS errors, countIf(r.forced = 1) AS forced, sum(toUInt64(scaled)) AS scaled, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL) AS instructions_samples, sumIf(toUInt128(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL) AS instructions_events, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND NOT (instructions IS NOT NULL)) AS instructions_absent, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL AND weight > 0) AS instructions_n, sumIf(toInt256(weight) * toInt256(assumeNotNull(instructions)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL) AS instructions_sum, sumIf(toInt256(weight) * toInt256(assumeNotNull(instructions)) * toInt256(assumeNotNull(instructions)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL) AS instructions_sum_sq, sumIf(toInt256(weight) * toInt256(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL) AS instructions_w2, sumIf(toInt256(weight) * toInt256(weight) * toInt256(assumeNotNull(instructions)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL) AS instructions_w2_sum, sumIf(toInt256(weight) * toInt256(weight) * toInt256(assumeNotNull(instructions)) * toInt256(assumeNotNull(instructions)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL) AS instructions_w2_sum_sq, sumMapStateIf([toInt16(if(toInt128(assumeNotNull(instructions)) < 0, -1 - if(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64))), if(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(instructions))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64)))))], [weight], r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND instructions IS NOT NULL AND weight > 0) AS instructions_sketch, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL) AS cycles_samples, sumIf(toUInt128(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL) AS cycles_events, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND NOT (cycles IS NOT NULL)) AS cycles_absent, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL AND weight > 0) AS cycles_n, sumIf(toInt256(weight) * toInt256(assumeNotNull(cycles)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL) AS cycles_sum, sumIf(toInt256(weight) * toInt256(assumeNotNull(cycles)) * toInt256(assumeNotNull(cycles)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL) AS cycles_sum_sq, sumIf(toInt256(weight) * toInt256(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL) AS cycles_w2, sumIf(toInt256(weight) * toInt256(weight) * toInt256(assumeNotNull(cycles)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL) AS cycles_w2_sum, sumIf(toInt256(weight) * toInt256(weight) * toInt256(assumeNotNull(cycles)) * toInt256(assumeNotNull(cycles)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL) AS cycles_w2_sum_sq, sumMapStateIf([toInt16(if(toInt128(assumeNotNull(cycles)) < 0, -1 - if(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64))), if(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cycles))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64)))))], [weight], r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cycles IS NOT NULL AND weight > 0) AS cycles_sketch, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL) AS cpu_ns_samples, sumIf(toUInt128(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL) AS cpu_ns_events, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND NOT (cpu_ns IS NOT NULL)) AS cpu_ns_absent, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL AND weight > 0) AS cpu_ns_n, sumIf(toInt256(weight) * toInt256(assumeNotNull(cpu_ns)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL) AS cpu_ns_sum, sumIf(toInt256(weight) * toInt256(assumeNotNull(cpu_ns)) * toInt256(assumeNotNull(cpu_ns)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL) AS cpu_ns_sum_sq, sumIf(toInt256(weight) * toInt256(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL) AS cpu_ns_w2, sumIf(toInt256(weight) * toInt256(weight) * toInt256(assumeNotNull(cpu_ns)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL) AS cpu_ns_w2_sum, sumIf(toInt256(weight) * toInt256(weight) * toInt256(assumeNotNull(cpu_ns)) * toInt256(assumeNotNull(cpu_ns)), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL) AS cpu_ns_w2_sum_sq, sumMapStateIf([toInt16(if(toInt128(assumeNotNull(cpu_ns)) < 0, -1 - if(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64))), if(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(assumeNotNull(cpu_ns))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64)))))], [weight], r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND cpu_ns IS NOT NULL AND weight > 0) AS cpu_ns_sketch, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1) AS wall_ns_samples, sumIf(toUInt128(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1) AS wall_ns_events, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND NOT (1)) AS wall_ns_absent, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1 AND weight > 0) AS wall_ns_n, sumIf(toInt256(weight) * toInt256(wall_ns), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1) AS wall_ns_sum, sumIf(toInt256(weight) * toInt256(wall_ns) * toInt256(wall_ns), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1) AS wall_ns_sum_sq, sumIf(toInt256(weight) * toInt256(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1) AS wall_ns_w2, sumIf(toInt256(weight) * toInt256(weight) * toInt256(wall_ns), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1) AS wall_ns_w2_sum, sumIf(toInt256(weight) * toInt256(weight) * toInt256(wall_ns) * toInt256(wall_ns), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1) AS wall_ns_w2_sum_sq, sumMapStateIf([toInt16(if(toInt128(wall_ns) < 0, -1 - if(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64))), if(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(wall_ns)), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64)))))], [weight], r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND 1 AND weight > 0) AS wall_ns_sketch, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL) AS rss_change_samples, sumIf(toUInt128(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL) AS rss_change_events, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND NOT (rss_start IS NOT NULL AND rss_end IS NOT NULL)) AS rss_change_absent, countIf(r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL AND weight > 0) AS rss_change_n, sumIf(toInt256(weight) * toInt256(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL) AS rss_change_sum, sumIf(toInt256(weight) * toInt256(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))) * toInt256(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL) AS rss_change_sum_sq, sumIf(toInt256(weight) * toInt256(weight), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL) AS rss_change_w2, sumIf(toInt256(weight) * toInt256(weight) * toInt256(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL) AS rss_change_w2_sum, sumIf(toInt256(weight) * toInt256(weight) * toInt256(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))) * toInt256(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))), r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL) AS rss_change_w2_sum_sq, sumMapStateIf([toInt16(if(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start))) < 0, -1 - if(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64))), if(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))) < 128, toInt32(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615)))), toInt32(128 + ((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 7) * 64 + (toInt64(bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), toUInt8((least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63) - (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) = 0) + (bitShiftRight(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)), least(toUInt8(floor(log2(toFloat64(greatest(toUInt64(least(abs(toInt128(toInt128(assumeNotNull(rss_end)) - toInt128(assumeNotNull(rss_start)))), toInt128(18446744073709551615))), toUInt64(128)))))), 63)) >= 2)) - 6))) - 64)))))], [weight], r.forced = 0 AND r.cancelled = 0 AND r.error = '' AND rss_start IS NOT NULL AND rss_end IS NOT NULL AND weight > 0) AS rss_change_sketch FROM dynostats.records AS r GROUP BY kind, name, method, build, bucket;

-- records_in
CREATE TABLE IF NOT EXISTS dynostats.records_in (
    v UInt8,
    kind LowCardinality(String),
    ts UInt64,
    name String,
    method String,
    status Nullable(UInt16),
    labels Map(String, String),
    weight UInt64,
    wall_ns UInt64,
    cpu_ns Nullable(UInt64),
    instructions Nullable(UInt64),
    cycles Nullable(UInt64),
    page_faults Nullable(UInt64),
    context_switches Nullable(UInt64),
    rss_start Nullable(UInt64),
    rss_end Nullable(UInt64),
    peak_rss Nullable(UInt64),
    polls Nullable(UInt64),
    threads Nullable(UInt64),
    source String,
    scaled UInt8,
    cancelled UInt8,
    forced UInt8,
    error String,
    pid UInt32,
    id Nullable(UInt64),
    trace_id String,
    span_id String,
    detail String
) ENGINE = Null;

-- records_in_records
CREATE MATERIALIZED VIEW IF NOT EXISTS dynostats.records_in_records TO dynostats.records AS SELECT ts, kind, name, method, status, labels['host'] AS host, labels['build'] AS build, mapKeys(labels) AS label_keys, mapValues(labels) AS label_values, weight, wall_ns, cpu_ns, instructions, cycles, page_faults, context_switches, rss_start, rss_end, peak_rss, polls, threads, source, scaled, cancelled, forced, error, pid, id, trace_id, span_id, v FROM dynostats.records_in WHERE kind IN ('request', 'region');

-- records_in_status
CREATE MATERIALIZED VIEW IF NOT EXISTS dynostats.records_in_status TO dynostats.status AS SELECT ts, name, labels['host'] AS host, labels['build'] AS build, mapKeys(labels) AS label_keys, mapValues(labels) AS label_values, pid, source, JSONExtractString(detail, 'sink') AS sink, arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'counters', 'String')) AS counter_names, arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'counters', 'String')) AS counter_states, arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'sources', 'String')) AS source_names, arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'sources', 'String')) AS source_values, arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'stats', 'UInt64')) AS stat_names, arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'stats', 'UInt64')) AS stat_values, arrayFlatten(arrayMap(s -> arrayMap(k -> s.1, JSONExtractKeys(s.2)), JSONExtractKeysAndValuesRaw(detail, 'sinks'))) AS sink_names, arrayFlatten(arrayMap(s -> JSONExtractKeys(s.2), JSONExtractKeysAndValuesRaw(detail, 'sinks'))) AS sink_stats, arrayFlatten(arrayMap(s -> arrayMap(x -> x.2, JSONExtractKeysAndValues(s.2, 'UInt64')), JSONExtractKeysAndValuesRaw(detail, 'sinks'))) AS sink_values, arrayMap(x -> x.1, JSONExtractKeysAndValues(detail, 'errors', 'String')) AS error_sinks, arrayMap(x -> x.2, JSONExtractKeysAndValues(detail, 'errors', 'String')) AS error_texts, v FROM dynostats.records_in WHERE kind = 'status';

-- records_in_profile_nodes
CREATE MATERIALIZED VIEW IF NOT EXISTS dynostats.records_in_profile_nodes TO dynostats.profile_nodes AS SELECT ts, kind, name, method, status, labels['host'] AS host, labels['build'] AS build, mapKeys(labels) AS label_keys, mapValues(labels) AS label_values, weight, forced, cancelled, error, source, scaled, pid, id, trace_id, span_id, JSONExtractString(detail, 'timer') AS timer, JSONExtractString(detail, 'timer_requested') AS timer_requested, toUInt32(i - 1) AS node, JSONExtract(ns[i], 'parent', 'Nullable(UInt32)') AS parent, toUInt16(length(node_path) - 1) AS depth, names[i] AS scope, node_path AS path, JSONExtractUInt(ns[i], 'calls') AS calls, JSONExtractInt(ns[i], 'inclusive') AS inclusive, JSONExtractInt(ns[i], 'exclusive') AS exclusive, toUInt8(JSONExtractBool(ns[i], 'recursive')) AS recursive, if(i = 1, JSONExtract(detail, 'total', 'Nullable(Int64)'), CAST(NULL, 'Nullable(Int64)')) AS total, if(i = 1, JSONExtractInt(detail, 'overhead'), 0) AS overhead, if(i = 1, arrayMap(x -> x.1, stats), []) AS stat_names, if(i = 1, arrayMap(x -> x.2, stats), CAST([], 'Array(UInt64)')) AS stat_values, v FROM (SELECT *, i, i AS a0, parents[a0] AS a1, parents[a1] AS a2, parents[a2] AS a3, parents[a3] AS a4, parents[a4] AS a5, parents[a5] AS a6, parents[a6] AS a7, parents[a7] AS a8, parents[a8] AS a9, parents[a9] AS a10, parents[a10] AS a11, parents[a11] AS a12, parents[a12] AS a13, parents[a13] AS a14, parents[a14] AS a15, parents[a15] AS a16, parents[a16] AS a17, parents[a17] AS a18, parents[a18] AS a19, parents[a19] AS a20, parents[a20] AS a21, parents[a21] AS a22, parents[a22] AS a23, parents[a23] AS a24, parents[a24] AS a25, parents[a25] AS a26, parents[a26] AS a27, parents[a27] AS a28, parents[a28] AS a29, parents[a29] AS a30, parents[a30] AS a31, parents[a31] AS a32, parents[a32] AS a33, parents[a33] AS a34, parents[a34] AS a35, parents[a35] AS a36, parents[a36] AS a37, parents[a37] AS a38, parents[a38] AS a39, parents[a39] AS a40, parents[a40] AS a41, parents[a41] AS a42, parents[a42] AS a43, parents[a43] AS a44, parents[a44] AS a45, parents[a45] AS a46, parents[a46] AS a47, parents[a47] AS a48, parents[a48] AS a49, parents[a49] AS a50, parents[a50] AS a51, parents[a51] AS a52, parents[a52] AS a53, parents[a53] AS a54, parents[a54] AS a55, parents[a55] AS a56, parents[a56] AS a57, parents[a57] AS a58, parents[a58] AS a59, parents[a59] AS a60, parents[a60] AS a61, parents[a61] AS a62, parents[a62] AS a63, parents[a63] AS a64, parents[a64] AS a65, parents[a65] AS a66, parents[a66] AS a67, parents[a67] AS a68, parents[a68] AS a69, parents[a69] AS a70, parents[a70] AS a71, parents[a71] AS a72, parents[a72] AS a73, parents[a73] AS a74, parents[a74] AS a75, parents[a75] AS a76, parents[a76] AS a77, parents[a77] AS a78, parents[a78] AS a79, parents[a79] AS a80, parents[a80] AS a81, parents[a81] AS a82, parents[a82] AS a83, parents[a83] AS a84, parents[a84] AS a85, parents[a85] AS a86, parents[a86] AS a87, parents[a87] AS a88, parents[a88] AS a89, parents[a89] AS a90, parents[a90] AS a91, parents[a91] AS a92, parents[a92] AS a93, parents[a93] AS a94, parents[a94] AS a95, parents[a95] AS a96, parents[a96] AS a97, parents[a97] AS a98, parents[a98] AS a99, parents[a99] AS a100, parents[a100] AS a101, parents[a101] AS a102, parents[a102] AS a103, parents[a103] AS a104, parents[a104] AS a105, parents[a105] AS a106, parents[a106] AS a107, parents[a107] AS a108, parents[a108] AS a109, parents[a109] AS a110, parents[a110] AS a111, parents[a111] AS a112, parents[a112] AS a113, parents[a113] AS a114, parents[a114] AS a115, parents[a115] AS a116, parents[a116] AS a117, parents[a117] AS a118, parents[a118] AS a119, parents[a119] AS a120, parents[a120] AS a121, parents[a121] AS a122, parents[a122] AS a123, parents[a123] AS a124, parents[a124] AS a125, parents[a125] AS a126, parents[a126] AS a127, parents[a127] AS a128, parents[a128] AS a129, parents[a129] AS a130, parents[a130] AS a131, arrayReverse(arrayMap(j -> names[j], arrayFilter(j -> j > 0, [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, a32, a33, a34, a35, a36, a37, a38, a39, a40, a41, a42, a43, a44, a45, a46, a47, a48, a49, a50, a51, a52, a53, a54, a55, a56, a57, a58, a59, a60, a61, a62, a63, a64, a65, a66, a67, a68, a69, a70, a71, a72, a73, a74, a75, a76, a77, a78, a79, a80, a81, a82, a83, a84, a85, a86, a87, a88, a89, a90, a91, a92, a93, a94, a95, a96, a97, a98, a99, a100, a101, a102, a103, a104, a105, a106, a107, a108, a109, a110, a111, a112, a113, a114, a115, a116, a117, a118, a119, a120, a121, a122, a123, a124, a125, a126, a127, a128, a129, a130, a131]))) AS node_path FROM (SELECT *, JSONExtractArrayRaw(detail, 'nodes') AS ns, arrayMap(n -> JSONExtractString(n, 'name'), ns) AS names, arrayMap((n, k) -> if(JSONHas(n, 'parent'), if(JSONExtractUInt(n, 'parent') + 1 < k, toUInt32(JSONExtractUInt(n, 'parent') + 1), toUInt32(k > 1)), toUInt32(0)), ns, arrayEnumerate(ns)) AS parents, JSONExtractKeysAndValues(detail, 'stats', 'UInt64') AS stats FROM dynostats.records_in WHERE kind = 'profile') ARRAY JOIN arrayEnumerate(ns) AS i);

-- schema_version row
INSERT INTO dynostats.schema_version (version) SELECT 2 WHERE (SELECT count() FROM dynostats.schema_version WHERE version = 2) = 0;
