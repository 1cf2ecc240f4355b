//! The exported objects read back from a workspace's bucket, and the checks a user makes of them.

use super::*;

/// One exported object, read back.
pub struct Object {
    pub key: String,
    pub table: Table,
    pub workspace: i64,
    pub seq: u64,
    pub batch: RecordBatch,
}

/// Parses `<prefix>/<stem>_v5_[chngs_]<ws>_<seq>.parquet`.
pub fn parse_key(prefix: &str, key: &str) -> Option<(Table, i64, u64)> {
    let name = key.strip_prefix(prefix)?.strip_prefix('/')?.strip_suffix(".parquet")?;
    let (stem, rest) = name.split_once("_v5_")?;
    let rest = rest.strip_prefix("chngs_").unwrap_or(rest);
    let (ws, seq) = rest.split_once('_')?;
    let table = *Table::ALL.iter().find(|t| t.stem() == stem)?;
    (seq.len() >= 12).then_some(())?;
    Some((table, ws.parse().ok()?, seq.parse().ok()?))
}

/// Runs an S3 request up to five times, 200 ms apart: the local server (s3s-fs) can fail a
/// listing that races a write into the same bucket; a persistent failure still fails the test.
async fn retrying<T, E: std::fmt::Debug, F>(what: &str, mut request: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(out) => return out,
            Err(e) if attempt < 5 => {
                eprintln!("{what}: attempt {attempt} failed, retrying: {e:?}");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: failed {attempt} times: {e:?}"),
        }
    }
}

/// The object keys of `ws`'s bucket (S3 or GCS).
pub async fn list_keys(stack: &Stack, ws: i64, bucket: &str) -> Vec<String> {
    if stack.gcs.contains(&ws) {
        return dwsync_tests::gcs::list_gcs_objects(bucket, "").await;
    }
    let s3 = s3_client();
    let (mut keys, mut token) = (Vec::new(), None);
    loop {
        let out = retrying(&format!("listing {bucket}"), || {
            s3.list_objects_v2().bucket(bucket).set_continuation_token(token.clone()).send()
        })
        .await;
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return keys;
        }
    }
}

/// The bytes of `key` in `ws`'s bucket (S3 or GCS).
pub async fn read_key(stack: &Stack, ws: i64, bucket: &str, key: &str) -> Vec<u8> {
    if stack.gcs.contains(&ws) {
        return dwsync_tests::gcs::read_gcs_object(bucket, key)
            .await
            .unwrap_or_else(|| panic!("gs://{bucket}/{key} is gone"));
    }
    let s3 = s3_client();
    let out = retrying(&format!("reading {key}"), || s3.get_object().bucket(bucket).key(key).send()).await;
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Lists and reads every object of the stack's buckets; panics on a key that breaks the naming rule.
pub async fn read_objects(stack: &Stack, cache: &mut BTreeMap<(i64, String), Object>) -> usize {
    let mut validates = 0;
    for (&ws, bucket) in &stack.buckets {
        for key in list_keys(stack, ws, bucket).await {
            if key == format!("{}/cio-validate", dest_prefix(ws)) {
                validates += 1;
                continue;
            }
            if cache.contains_key(&(ws, key.clone())) {
                continue;
            }
            let (table, workspace, seq) =
                parse_key(&dest_prefix(ws), &key).unwrap_or_else(|| panic!("unexpected object key {key}"));
            let body = read_key(stack, ws, bucket, &key).await;
            let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(body)).unwrap().build().unwrap();
            let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
            let batch = concat_batches(&arrow_schema(table), &batches).unwrap();
            let _ = cache.insert((ws, key.clone()), Object { key, table, workspace, seq, batch });
        }
    }
    validates
}

pub fn id_strings(batch: &RecordBatch, table: Table) -> Vec<String> {
    let col = batch.column_by_name(id_column(table)).unwrap();
    (0..col.len())
        .map(|i| match col.data_type() {
            arrow::datatypes::DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
            _ => col.as_string::<i32>().value(i).to_owned(),
        })
        .collect()
}

/// Waits until the objects hold as many rows as were produced (or a deadline), then checks
/// everything a user would: names, cio-validate, isolation, schemas, values, exactly once, order.
pub async fn verify(stack: &Stack, produced: &Produced, within: Duration, processes: &mut [&mut ServiceProcess]) {
    verify_keyed(stack, produced, within, processes, Keys::Workspace).await;
}

/// [`verify`] for records produced with `keys`: the files of a table follow the records' order
/// only when one partition holds all of a workspace's records ([`Keys::Workspace`]).
pub async fn verify_keyed(
    stack: &Stack,
    produced: &Produced,
    within: Duration,
    processes: &mut [&mut ServiceProcess],
    keys: Keys,
) {
    let mut cache = BTreeMap::new();
    let deadline = Instant::now() + within;
    let mut validates;
    loop {
        validates = read_objects(stack, &mut cache).await;
        let rows: usize = cache.values().map(|o| o.batch.num_rows()).sum();
        if rows >= produced.total() || Instant::now() > deadline {
            break;
        }
        for p in processes.iter_mut() {
            assert!(p.is_running(), "{} exited:\n{}", p.name(), p.log_tail(30));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(validates, stack.buckets.len(), "one cio-validate per destination");

    let mut by_table: BTreeMap<(i64, Table), Vec<&Object>> = BTreeMap::new();
    for o in cache.values() {
        assert_eq!(o.batch.schema(), arrow_schema(o.table), "{}: schema", o.key);
        let ws = o.batch.column_by_name("workspace_id").unwrap().as_primitive::<Int64Type>();
        assert!(ws.iter().all(|w| w == Some(o.workspace)), "{}: rows of another workspace", o.key);
        assert!(
            o.key.contains(&format!("_v5_{}_", o.workspace)) || o.key.contains(&format!("_v5_chngs_{}_", o.workspace))
        );
        by_table.entry((o.workspace, o.table)).or_default().push(o);
    }
    for ((ws, table), expected) in &produced.records {
        let mut files = by_table.remove(&(*ws, *table)).unwrap_or_default();
        // Every record exactly once.
        let got: Vec<String> = files.iter().flat_map(|o| id_strings(&o.batch, *table)).collect();
        let distinct: BTreeSet<&String> = got.iter().collect();
        assert_eq!(got.len(), distinct.len(), "ws {ws} {table}: duplicated rows");
        let want: BTreeSet<&String> = expected.keys().collect();
        if distinct != want {
            // Which ones: the last produced missing means a stall, earlier ones a loss.
            let mut missing: Vec<u64> = want.difference(&distinct).map(|id| expected[*id].n).collect();
            missing.sort_unstable();
            let unknown = distinct.difference(&want).count();
            let last = expected.values().map(|s| s.n).max().unwrap_or_default();
            panic!(
                "ws {ws} {table}: {} of {} rows missing (record numbers {missing:?}; the last produced is {last}), \
                 {unknown} unknown rows",
                missing.len(),
                want.len()
            );
        }
        // Values: the rows equal the produced records decoded by the contract.
        let batches: Vec<RecordBatch> = files.iter().map(|o| o.batch.clone()).collect();
        let actual = concat_batches(&arrow_schema(*table), &batches).unwrap();
        let mut builder = BatchBuilder::new(*table);
        for sent in expected.values() {
            builder.append(&decode(*table, sent.encoding, &sent.bytes).unwrap());
        }
        let wanted = concat_batches(&arrow_schema(*table), &builder.finish().unwrap()).unwrap();
        assert_eq!(sorted(&actual, *table), sorted(&wanted, *table), "ws {ws} {table}: values");
        // seq strictly increasing, in the order the records were produced (one partition per workspace).
        files.sort_by_key(|o| o.seq);
        let seqs: Vec<u64> = files.iter().map(|o| o.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ws {ws} {table}: seqs {seqs:?}");
        let ranges: Vec<(u64, u64)> = files
            .iter()
            .map(|o| {
                let ns: Vec<u64> = id_strings(&o.batch, *table).iter().map(|id| expected[id].n).collect();
                (*ns.iter().min().unwrap(), *ns.iter().max().unwrap())
            })
            .collect();
        if !table.def().has_change_files && matches!(keys, Keys::Workspace) {
            assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "ws {ws} {table}: files out of order {ranges:?}");
        }
    }
    assert!(by_table.is_empty(), "objects of unexpected tables: {:?}", by_table.keys().collect::<Vec<_>>());
}

pub fn sorted(batch: &RecordBatch, table: Table) -> RecordBatch {
    let col = batch.column_by_name(id_column(table)).unwrap();
    let idx = sort_to_indices(col, None, None).unwrap();
    take_record_batch(batch, &idx).unwrap()
}
