//! For every v5 table: sample rows (nulls, unicode, empty strings, i64 extremes, lists) decoded
//! from JSON, encoded to Parquet, read back with the `parquet` crate's reader, and compared
//! value by value with the input — plus the physical Parquet schema a warehouse sees.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use dwsync_contract::{BatchBuilder, FieldType, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, Table, arrow_schema, decode_json};
use dwsync_format::{Codec, FileOptions, ParquetFileWriter, ParquetOptions, new_value_per_row};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{LogicalType, TimeUnit};
use serde_json::{Map, Value as Json, json};

/// Three sample rows for a table: all set (extremes, unicode), nullable as null / required empty,
/// nullable absent / lists empty. Returned as the JSON objects and the values expected back.
fn samples(table: Table) -> Vec<(Json, Map<String, Json>)> {
    let mut rows = Vec::new();
    for variant in 0..3 {
        let mut input = Map::new();
        let mut expected = Map::new();
        for (i, f) in table.def().fields.iter().enumerate() {
            let (value, back) = match (f.ty, variant) {
                _ if f.name == "workspace_id" => (json!(1 + variant), json!(1 + variant)),
                (_, 1 | 2) if f.nullable && !(variant == 2 && f.ty == FieldType::ListUtf8) => {
                    if variant == 2 {
                        expected.insert(f.name.into(), Json::Null);
                        continue; // absent
                    }
                    (Json::Null, Json::Null)
                }
                (FieldType::Int64, 0) => {
                    let v = if i % 2 == 0 { i64::MAX } else { i64::MIN };
                    (json!(v), json!(v))
                }
                (FieldType::Int64, _) => (json!(0), json!(0)),
                (FieldType::Utf8, 0) => {
                    let s = format!("ünïcödé 😀 {} \"quoted\"\n", f.name);
                    (json!(s), json!(s))
                }
                (FieldType::Utf8, _) => (json!(""), json!("")),
                (FieldType::Boolean, v) => (json!(v == 0), json!(v == 0)),
                (FieldType::Timestamp, 0) => (json!(MAX_TIMESTAMP_MS), json!(MAX_TIMESTAMP_MS)),
                (FieldType::Timestamp, 1) => (json!(MIN_TIMESTAMP_MS), json!(MIN_TIMESTAMP_MS)),
                (FieldType::Timestamp, _) => (json!("2026-11-29T01:02:03.456+01:00"), json!(1_795_910_523_456_i64)),
                (FieldType::ListUtf8, 0) => (json!(["a", "", "日本語"]), json!(["a", "", "日本語"])),
                (FieldType::ListUtf8, _) => (json!([]), json!([])),
            };
            input.insert(f.name.into(), value);
            expected.insert(f.name.into(), back);
        }
        input.insert("an_unknown_key".into(), json!({"ignored": [1, 2]}));
        rows.push((Json::Object(input), expected));
    }
    rows
}

/// Reads cell (`row`, `col`) of a batch as JSON, independently of the decoder.
fn cell(batch: &RecordBatch, row: usize, col: usize, ty: FieldType) -> Json {
    let array = batch.column(col);
    if array.is_null(row) {
        return Json::Null;
    }
    match ty {
        FieldType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        FieldType::Timestamp => json!(array.as_primitive::<TimestampMillisecondType>().value(row)),
        FieldType::Utf8 => json!(array.as_string::<i32>().value(row)),
        FieldType::Boolean => json!(array.as_boolean().value(row)),
        FieldType::ListUtf8 => {
            let list = array.as_list::<i32>().value(row);
            let items: Vec<_> = (0..list.len()).map(|i| list.as_string::<i32>().value(i).to_owned()).collect();
            json!(items)
        }
    }
}

fn encode(table: Table, inputs: &[Vec<u8>], options: &FileOptions) -> Vec<u8> {
    let mut builder = BatchBuilder::new(table);
    for input in inputs {
        let row = decode_json(table, input).unwrap_or_else(|e| panic!("{e}"));
        builder.append(&row);
    }
    let mut writer = ParquetFileWriter::new(table, Vec::new(), options).expect("writer");
    for batch in builder.finish().expect("batch") {
        writer.write(&batch).expect("write");
    }
    assert_eq!(writer.rows(), inputs.len() as u64);
    writer.finish().expect("finish")
}

#[test]
fn every_table_round_trips_through_parquet() {
    for &table in Table::ALL {
        let samples = samples(table);
        let inputs: Vec<Vec<u8>> = samples.iter().map(|(j, _)| serde_json::to_vec(j).expect("json")).collect();
        // As ingest writes a file of three rows (no dictionaries, chunk statistics, the small
        // file codec) and as it writes a large one.
        for options in [ParquetOptions::default().for_rows(inputs.len()), FileOptions::default()] {
            round_trip(table, &samples, &encode(table, &inputs, &options));
        }
    }
}

/// Reads `file` back and checks its schemas, metadata and every value against `samples`.
fn round_trip(table: Table, samples: &[(Json, Map<String, Json>)], file: &[u8]) {
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::copy_from_slice(file)).expect("reader");
    // The file's Arrow schema is the contract's (names, order, types, nullability).
    assert_eq!(reader.schema().fields(), arrow_schema(table).fields(), "{table}");
    // The physical Parquet schema a warehouse sees.
    let parquet_schema = reader.parquet_schema();
    let def = table.def();
    for (i, f) in def.fields.iter().enumerate() {
        if f.ty == FieldType::Timestamp {
            let col = parquet_schema.column(i);
            assert_eq!(
                col.logical_type_ref(),
                Some(&LogicalType::timestamp(true, TimeUnit::MILLIS)),
                "{table}.{}",
                f.name
            );
        }
    }
    let kv = reader.metadata().file_metadata().key_value_metadata().expect("kv");
    assert!(kv.iter().any(|k| k.key == "dwsync.table" && k.value.as_deref() == Some(table.name())));
    // The Arrow schema too, as the parquet crate writes it (pyarrow and arrow-rs read types from it).
    assert!(kv.iter().any(|k| k.key == parquet::arrow::ARROW_SCHEMA_META_KEY && k.value.is_some()), "{table}");

    let batches: Vec<RecordBatch> = reader.build().expect("build").collect::<Result<_, _>>().expect("read");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, samples.len(), "{table}");
    let batch = &batches[0];
    for (r, (_, expected)) in samples.iter().enumerate() {
        for (c, f) in def.fields.iter().enumerate() {
            assert_eq!(cell(batch, r, c, f.ty), expected[f.name], "{table} row {r} column {}", f.name);
        }
    }
}

#[test]
fn every_codec_writes_readable_files_and_row_groups_are_cut_by_rows() {
    let table = Table::Metrics;
    let inputs: Vec<Vec<u8>> =
        (0..10).flat_map(|_| samples(table)).map(|(j, _)| serde_json::to_vec(&j).expect("json")).collect();
    for codec in [Codec::Zstd, Codec::Snappy, Codec::Lz4, Codec::Uncompressed] {
        let options = FileOptions { codec, max_row_group_rows: 7, ..FileOptions::default() };
        let file = encode(table, &inputs, &options);
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).expect("reader");
        let groups = reader.metadata().row_groups();
        assert_eq!(groups.len(), 30usize.div_ceil(7), "{codec:?}");
        assert!(groups.iter().all(|g| g.num_rows() <= 7));
        let rows: usize = reader.build().expect("build").map(|b| b.expect("batch").num_rows()).sum();
        assert_eq!(rows, 30, "{codec:?}");
    }
}

#[test]
fn small_files_use_the_small_file_codec_and_larger_ones_zstd() {
    let table = Table::Metrics;
    let one: Vec<Vec<u8>> = samples(table).into_iter().map(|(j, _)| serde_json::to_vec(&j).expect("json")).collect();
    let defaults = ParquetOptions::default();
    for (copies, expected) in
        [(1, parquet::basic::Compression::SNAPPY), (400, parquet::basic::Compression::ZSTD(Default::default()))]
    {
        let inputs: Vec<Vec<u8>> = (0..copies).flat_map(|_| one.clone()).collect();
        let file = encode(table, &inputs, &defaults.for_rows(inputs.len()));
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).expect("reader");
        let group = &reader.metadata().row_groups()[0];
        assert_eq!(group.num_rows() as usize, inputs.len());
        for column in group.columns() {
            assert_eq!(
                std::mem::discriminant(&column.compression()),
                std::mem::discriminant(&expected),
                "{} rows: column {}",
                inputs.len(),
                column.column_path()
            );
        }
    }
    let never = ParquetOptions { small_file_rows: 0, ..defaults };
    assert_eq!(never.for_rows(1).codec, Codec::Zstd);
}

#[test]
fn small_files_go_without_dictionaries_and_page_index_and_keep_chunk_statistics() {
    let table = Table::Metrics;
    let one: Vec<Vec<u8>> = samples(table).into_iter().map(|(j, _)| serde_json::to_vec(&j).expect("json")).collect();
    let defaults = ParquetOptions::default();
    assert_eq!((defaults.dictionary_min_rows, defaults.page_index_min_rows), (100, 1_000));
    // (rows, a dictionary for `metric`, a page index)
    for (copies, dictionary, page_index) in [(10, false, false), (40, true, false), (400, true, true)] {
        let inputs: Vec<Vec<u8>> = (0..copies).flat_map(|_| one.clone()).collect();
        let file = encode(table, &inputs, &defaults.for_rows(inputs.len()));
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).expect("reader");
        let group = &reader.metadata().row_groups()[0];
        let rows = inputs.len();
        for column in group.columns() {
            let name = column.column_path().string();
            assert_eq!(column.column_index_offset().is_some(), page_index, "{rows} rows: {name}");
            // Chunk statistics whatever the size: warehouses prune row groups by them.
            let statistics = column.statistics().unwrap_or_else(|| panic!("{rows} rows: {name} has no statistics"));
            assert!(statistics.null_count_opt().is_some(), "{rows} rows: {name}");
            if name == "metric" {
                assert_eq!(column.dictionary_page_offset().is_some(), dictionary, "{rows} rows: {name}");
                assert!(statistics.min_bytes_opt().is_some() && statistics.max_bytes_opt().is_some());
            }
        }
        let read: usize = reader.build().expect("build").map(|b| b.expect("batch").num_rows()).sum();
        assert_eq!(read, rows);
    }
}

#[test]
fn columns_with_a_new_value_per_row_are_written_without_a_dictionary_and_others_with_one() {
    let table = Table::Metrics;
    assert_eq!(table.def().primary_key, ["event_id"]);
    let one: Vec<Vec<u8>> = samples(table).into_iter().map(|(j, _)| serde_json::to_vec(&j).expect("json")).collect();
    let inputs: Vec<Vec<u8>> = (0..400).flat_map(|_| one.clone()).collect();
    let file = encode(table, &inputs, &FileOptions::default());
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file)).expect("reader");
    let group = &reader.metadata().row_groups()[0];
    let dictionary = |name: &str| {
        let column = group.columns().iter().find(|c| c.column_path().string() == name).expect("column");
        column.dictionary_page_offset().is_some()
    };
    // The key, the delivery's id, the timestamp and the sequence number: no dictionary.
    for name in ["event_id", "delivery_id", "created_at", "seq_num"] {
        assert!(!dictionary(name), "{name} has a dictionary page");
    }
    for name in ["metric", "workspace_id", "link_url", "inbox_domain"] {
        assert!(dictionary(name), "the repeated column {name} has no dictionary page");
    }
    let rows: usize = reader.build().expect("build").map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, inputs.len());
}

#[test]
fn every_table_keeps_dictionaries_for_its_repeated_columns() {
    for &table in Table::ALL {
        let fields = table.def().fields;
        let without: Vec<&str> = fields.iter().filter(|f| new_value_per_row(table, f)).map(|f| f.name).collect();
        // workspace_id is the same in every row of a file: always a dictionary.
        assert!(!without.contains(&"workspace_id"), "{table}: {without:?}");
        assert!(without.len() < fields.len() / 2 + 2, "{table}: most columns lose their dictionary: {without:?}");
        for field in fields.iter().filter(|f| f.ty == FieldType::Timestamp) {
            assert!(without.contains(&field.name), "{table}: timestamp {} keeps a dictionary", field.name);
        }
    }
    assert!(!new_value_per_row(Table::Attributes, &Table::Attributes.def().fields[2]), "attribute_name");
    assert!(new_value_per_row(Table::Attributes, &Table::Attributes.def().fields[1]), "a one-column key");
}

#[test]
fn a_batch_of_another_table_is_rejected() {
    let mut builder = BatchBuilder::new(Table::Events);
    let batch = builder.finish().expect("empty batch").remove(0);
    let mut writer = ParquetFileWriter::new(Table::Metrics, Vec::new(), &FileOptions::default()).expect("writer");
    assert!(writer.write(&batch).is_err());
}
