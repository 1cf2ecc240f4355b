#!/usr/bin/env python3
"""Measures the archive's layout (docs/HISTORY.md, "Layout") against Delta Lake and Iceberg.

A benchmark, never a test: see README.md beside this file for how to run it and what it measures.

    python layout_bench.py run --workspaces 100 1000 10000 --batches 20 --rows 50000 \
        --out /tmp/archive-layout --json results.json

Synthetic `metrics` rows (the v5 schema of shared/contract) from W workspaces of skewed sizes
(Zipf: workspace of rank r gets a share ∝ 1/(r+1)) arrive in N batches of one handoff partition.
Each layout writes the N batches, then one large (rank 0) and one small (rank W/2) workspace's
whole history is read back. Reads run in a child process twice: under strace (objects opened,
bytes read, from the read/pread syscalls on the files under the layout's directory) and
without (time, median of three runs).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq

# ---------------------------------------------------------------- the v5 metrics schema

TS = pa.timestamp("ms", tz="UTC")
METRICS = pa.schema(
    [
        pa.field("event_id", pa.string(), False),
        pa.field("workspace_id", pa.int64(), False),
        pa.field("delivery_id", pa.string(), False),
        pa.field("metric", pa.string(), False),
        pa.field("reason", pa.string(), True),
        pa.field("link_id", pa.int64(), True),
        pa.field("link_url", pa.string(), True),
        pa.field("created_at", TS, False),
        pa.field("seq_num", pa.int64(), False),
        pa.field("proxied", pa.bool_(), False),
        pa.field("prefetched", pa.bool_(), False),
        pa.field("machine", pa.bool_(), False),
        pa.field("user_agent", pa.string(), True),
        pa.field("email_client", pa.string(), True),
        pa.field("inbox_domain", pa.string(), True),
        pa.field("inbox_provider", pa.string(), True),
        pa.field("mx_host", pa.string(), True),
    ]
)
# shared/format: no dictionary for the primary key, timestamps and per-row columns.
NO_DICTIONARY = {"event_id", "created_at", "seq_num", "delivery_id"}
DICTIONARY = [f.name for f in METRICS if f.name not in NO_DICTIONARY]

METRIC_NAMES = ["sent", "delivered", "opened", "clicked", "converted", "bounced", "spammed",
                "unsubscribed", "failed", "dropped", "human_opened", "human_clicked"]
METRIC_P = np.array([30, 28, 18, 6, 1, 2, 0.2, 0.5, 1, 1, 8, 4.3])
METRIC_P = METRIC_P / METRIC_P.sum()
DOMAINS = [f"mail{i}.example.com" for i in range(40)] + ["gmail.com", "outlook.com", "yahoo.com"]
PROVIDERS = ["Google", "Microsoft", "Yahoo", "Apple", "Proton", "Zoho", "Other"]
CLIENTS = ["Gmail", "Apple Mail", "Outlook", "Thunderbird", "Yahoo Mail", "Samsung Mail"]
AGENTS = [f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.{i} (KHTML, like Gecko) Chrome/1{i}.0"
          for i in range(20)]
MX = [f"mx{i}.mail.example.net" for i in range(30)]
URLS = [f"https://shop.example.com/p/{i}?utm_source=email&utm_campaign=c{i % 17}" for i in range(200)]
BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)

PARTITION = 0
WS_BASE = 100_000  # workspace of rank r has id WS_BASE + r


def ids(rng: np.random.Generator, n: int, width: int = 27) -> pa.Array:
    """`n` random base62 ids (KSUID-like)."""
    data = BASE62[rng.integers(0, 62, size=n * width)].tobytes()
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32).tobytes()
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def pick(rng, values, n, null_p=0.0):
    idx = rng.integers(0, len(values), size=n)
    arr = np.array(values, dtype=object)[idx]
    if null_p:
        arr[rng.random(n) < null_p] = None
    return pa.array(arr, pa.string())


class Workload:
    """N batches of one partition: per batch `rows` metrics rows spread over W workspaces."""

    def __init__(self, workspaces: int, batches: int, rows: int, seed: int = 25):
        self.workspaces, self.batches, self.rows = workspaces, batches, rows
        rng = np.random.default_rng(seed + workspaces)
        share = 1.0 / np.arange(1, workspaces + 1)
        share /= share.sum()
        # counts[b, r]: rows of the workspace of rank r in batch b.
        self.counts = np.stack([rng.multinomial(rows, share) for _ in range(batches)])
        self.large = WS_BASE
        self.small = WS_BASE + workspaces // 2
        self.seed = seed
        self.offset = 0  # handoff offset of the next "file"

    def expected_rows(self, ws: int) -> int:
        return int(self.counts[:, ws - WS_BASE].sum())

    def batch(self, b: int) -> tuple[pa.Table, list[dict], tuple[int, int]]:
        """Batch `b`: its rows in offset order (each workspace's rows one handed-off file, the
        files in a random order), the files, and the batch's offset range."""
        rng = np.random.default_rng(self.seed * 1000 + b)
        counts = self.counts[b]
        present = np.nonzero(counts)[0]
        order = rng.permutation(present)
        ws = np.repeat(order + WS_BASE, counts[order]).astype(np.int64)
        n = len(ws)
        start = self.offset
        files = []
        for i, r in enumerate(order):
            files.append({"workspace_id": int(r + WS_BASE), "file_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)))),
                          "first_offset": start + i, "window_closed_at_ms": 1_700_000_000_000 + b * 60_000,
                          "rows": int(counts[r])})
        self.offset = start + len(order)
        metric_idx = rng.choice(len(METRIC_NAMES), size=n, p=METRIC_P)
        metric = np.array(METRIC_NAMES, dtype=object)[metric_idx]
        clicked = np.isin(metric_idx, [METRIC_NAMES.index("clicked"), METRIC_NAMES.index("human_clicked")])
        bounced = metric_idx == METRIC_NAMES.index("bounced")
        link_id = np.where(clicked, rng.integers(1, 5000, size=n), 0)
        link_url = np.array(URLS, dtype=object)[rng.integers(0, len(URLS), size=n)]
        link_url[~clicked] = None
        reason = np.full(n, None, dtype=object)
        reason[bounced] = "550 5.1.1 mailbox unavailable"
        created = 1_700_000_000_000 + b * 60_000 + np.sort(rng.integers(0, 60_000, size=n))
        opened = np.isin(metric_idx, [METRIC_NAMES.index(m) for m in ("opened", "clicked", "human_opened",
                                                                        "human_clicked")])
        table = pa.table(
            {
                "event_id": ids(rng, n),
                "workspace_id": pa.array(ws, pa.int64()),
                "delivery_id": ids(rng, n),
                "metric": pa.array(metric, pa.string()),
                "reason": pa.array(reason, pa.string()),
                "link_id": pa.array(link_id, pa.int64(), mask=~clicked),
                "link_url": pa.array(link_url, pa.string()),
                "created_at": pa.array(created, TS),
                "seq_num": pa.array(np.arange(b * self.rows, b * self.rows + n), pa.int64()),
                "proxied": pa.array(rng.random(n) < 0.1),
                "prefetched": pa.array(rng.random(n) < 0.05),
                "machine": pa.array(rng.random(n) < 0.2),
                "user_agent": pick(rng, AGENTS, n, 0.3),
                "email_client": pick(rng, CLIENTS, n, 0.3),
                "inbox_domain": pick(rng, DOMAINS, n, 0.05),
                "inbox_provider": pick(rng, PROVIDERS, n, 0.05),
                "mx_host": pick(rng, MX, n, 0.05),
            },
            schema=METRICS,
        )
        for col in ("user_agent", "email_client"):  # only opens and clicks have a client
            i = METRICS.get_field_index(col)
            table = table.set_column(i, METRICS.field(i), pa.array(
                np.where(opened, np.array(table.column(col).to_pylist(), dtype=object), None), pa.string()))
        return table, files, (start, self.offset)


def sorted_by_workspace(table: pa.Table) -> pa.Table:
    """Stable sort by workspace: a workspace's rows keep their offset order."""
    idx = pa.compute.sort_indices(
        pa.table({"w": table.column("workspace_id"), "i": pa.array(np.arange(table.num_rows))}),
        sort_keys=[("w", "ascending"), ("i", "ascending")])
    return table.take(idx)


# ---------------------------------------------------------------- layouts: writers


def files_under(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            out[p] = os.path.getsize(p)
    return out


class Dwsync:
    """(a) docs/HISTORY.md "Layout": <root>/p<partition>/<start>-<end>/metrics.parquet, one object
    per batch, rows sorted by workspace, one row group per workspace, statistics with a page
    index, zstd level 1, dictionaries except per-row columns, `dwsync.archive` footer JSON.

    With `pack_rows` (the layout `dwsync-packed`, dwsync's today): consecutive workspaces share a
    row group, which ends at the first workspace boundary at or after `pack_rows` rows (a
    workspace is never split); the footer JSON gives each workspace as an array, as
    `shared/archive/src/footer.rs` writes it: `[workspace_id, row_group, first_row, rows,
    [[first_offset, rows], ...]]` (the first emulation, `dwsync-packed8192` in results.json, kept
    the named fields with each file's id and window)."""

    def __init__(self, root: Path, pack_rows: int | None = None):
        self.root = root
        self.pack_rows = pack_rows
        self.name = f"dwsync-packed{pack_rows}-arrays" if pack_rows else "dwsync"

    def write(self, table: pa.Table, files: list[dict], span: tuple[int, int]) -> None:
        start, end = span
        key = self.root / f"p{PARTITION:04}" / f"{start:020}-{end:020}" / "metrics.parquet"
        key.parent.mkdir(parents=True, exist_ok=True)
        table = sorted_by_workspace(table)
        by_ws: dict[int, list[dict]] = {}
        for f in files:
            by_ws.setdefault(f["workspace_id"], []).append(f)
        workspaces = []
        provenance = {"topic": "handoff", "partition": PARTITION, "start_offset": start, "end_offset": end,
                      "table": "metrics", "kind": "unspecified", "workspaces": workspaces}
        ws_col = table.column("workspace_id").to_numpy()
        bounds = np.flatnonzero(np.diff(ws_col)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(ws_col)]])
        groups: list[tuple[int, int]] = []  # row groups as [first row, end row)
        for s, e in zip(starts, ends):
            if groups and self.pack_rows and groups[-1][1] - groups[-1][0] < self.pack_rows:
                groups[-1] = (groups[-1][0], int(e))
            else:
                groups.append((int(s), int(e)))
            ws = int(ws_col[s])
            entry = {"workspace_id": ws, "row_group": len(groups) - 1, "rows": int(e - s),
                     "files": [{k: f[k] for k in ("file_id", "first_offset", "window_closed_at_ms", "rows")}
                               for f in by_ws[ws]]}
            if self.pack_rows:
                entry = [ws, len(groups) - 1, int(s) - groups[-1][0], int(e - s),
                         [[f["first_offset"], f["rows"]] for f in by_ws[ws]]]
            workspaces.append(entry)
        tmp = key.with_suffix(".tmp")
        # The footer's key-value metadata as shared/format and write.rs put it: the Arrow schema
        # (without metadata of its own), the table, the schema version and the provenance.
        with pq.ParquetWriter(tmp, METRICS, compression="zstd", compression_level=1, use_dictionary=DICTIONARY,
                              write_statistics=True, write_page_index=True,
                              data_page_size=1 << 20) as writer:
            for s, e in groups:
                writer.write_table(table.slice(s, e - s), row_group_size=1 << 40)
            writer.add_key_value_metadata({"dwsync.table": "metrics", "dwsync.schema_version": "5",
                                           "dwsync.archive": json.dumps(provenance)})
        os.replace(tmp, key)  # create-only in S3; written once here


class Delta:
    """(b) Delta Lake unpartitioned, one append (commit) per batch; (c) with `partition_by`."""

    def __init__(self, root: Path, partitioned: bool, row_group_rows: int | None = None):
        self.root = root
        self.partitioned = partitioned
        self.row_group_rows = row_group_rows
        self.name = "delta-part" if partitioned else (f"delta-rg{row_group_rows}" if row_group_rows else "delta")

    def write(self, table, files, span):
        from deltalake import WriterProperties, write_deltalake
        props = WriterProperties(compression="ZSTD", compression_level=1, max_row_group_size=self.row_group_rows)
        write_deltalake(str(self.root), sorted_by_workspace(table), mode="append",
                        partition_by=["workspace_id"] if self.partitioned else None, writer_properties=props)


class Iceberg:
    """(d) Iceberg through pyiceberg with a local SQL (SQLite) catalog, partitioned by
    bucket(`buckets`, workspace_id), one append (snapshot) per batch."""

    def __init__(self, root: Path, buckets: int):
        self.root = root
        self.buckets = buckets
        self.name = f"iceberg-b{buckets}"
        self.table = None

    def catalog(self):
        from pyiceberg.catalog.sql import SqlCatalog
        return SqlCatalog("bench", uri=f"sqlite:///{self.root}/catalog.db", warehouse=f"file://{self.root}/warehouse")

    def write(self, table, files, span):
        table = sorted_by_workspace(table).cast(iceberg_schema())
        if self.table is None:
            from pyiceberg.transforms import BucketTransform
            self.root.mkdir(parents=True, exist_ok=True)
            cat = self.catalog()
            cat.create_namespace("archive")
            tbl = cat.create_table("archive.metrics", schema=iceberg_schema(),
                                   properties={"write.parquet.compression-codec": "zstd",
                                               "write.parquet.compression-level": "1"})
            with tbl.update_spec() as spec:
                spec.add_field("workspace_id", BucketTransform(self.buckets), "ws_bucket")
            self.table = cat.load_table("archive.metrics")
        self.table.append(table)


def iceberg_schema() -> pa.Schema:
    """Iceberg's timestamps are microseconds: the metrics schema with `created_at` in µs."""
    i = METRICS.get_field_index("created_at")
    return METRICS.set(i, pa.field("created_at", pa.timestamp("us", tz="UTC"), False))


# ---------------------------------------------------------------- layouts: readers (child process)


class Fetched(io.RawIOBase):
    """A read-only file of `size` bytes of which only `ranges` ({offset: bytes}) are known."""

    def __init__(self, size: int, ranges: dict[int, bytes]):
        self.size, self.ranges, self.pos = size, ranges, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, pos, whence=0):
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        return self.pos

    def read(self, n=-1):
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        for start, data in self.ranges.items():
            if start <= self.pos and self.pos + n <= start + len(data):
                out = data[self.pos - start:self.pos - start + n]
                self.pos += n
                return out
        raise OSError(f"read of {n} bytes at {self.pos} outside the fetched ranges")


def read_dwsync(root: str, ws: int) -> int:
    """dwsync's reader (shared/archive/src/read): list p<partition>/, then per object two
    ranged reads for the footer (8-byte tail, then the metadata) and one for the workspace's
    row group (first to last byte of its column chunks). Decodes only the bytes it read."""
    part = Path(root) / f"p{PARTITION:04}"
    rows = 0
    for batch in sorted(os.listdir(part)):
        path = part / batch / "metrics.parquet"
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            tail = os.pread(fd, 8, size - 8)
            meta_len = int.from_bytes(tail[:4], "little")
            footer = os.pread(fd, meta_len, size - 8 - meta_len)
            meta = pq.read_metadata(io.BytesIO(b"PAR1" + footer + tail))
            prov = json.loads(meta.metadata[b"dwsync.archive"])
            entries = ({"workspace_id": w[0], "row_group": w[1], "row_offset": w[2], "rows": w[3]}
                       if isinstance(w, list) else w for w in prov["workspaces"])
            entry = next((w for w in entries if w["workspace_id"] == ws), None)
            if entry is None or entry["row_group"] is None:
                continue
            rg = meta.row_group(entry["row_group"])
            first = min(c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
                        for c in (rg.column(i) for i in range(rg.num_columns)))
            last = max((c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset)
                       + c.total_compressed_size for c in (rg.column(i) for i in range(rg.num_columns)))
            body = os.pread(fd, last - first, first)
        finally:
            os.close(fd)
        # Decoded by pyarrow from the fetched ranges only (a read outside them fails).
        src = Fetched(size, {first: body, size - 8 - meta_len: footer + tail})
        t = pq.ParquetFile(pa.PythonFile(src, mode="r"), metadata=meta, pre_buffer=False).read_row_group(
            entry["row_group"], use_threads=False)  # PythonFile from several threads aborts at times
        if "row_offset" in entry:  # dwsync-packed: the workspace's rows of a shared row group
            t = t.slice(entry["row_offset"], entry["rows"])
        assert t.num_rows == entry["rows"]
        rows += t.num_rows
    return rows


def read_delta(root: str, ws: int) -> int:
    """delta-rs's own engine (DataFusion): log replay, file skipping by the add actions'
    statistics or partition values, then row-group and page pruning."""
    from deltalake import DeltaTable
    dt = DeltaTable(root)
    return sum(b.num_rows for b in dt.scan(predicate=f"workspace_id = {ws}"))


def read_iceberg(root: str, ws: int) -> int:
    """pyiceberg: catalog → metadata.json → manifest list → manifests (pruned by the bucket),
    data files pruned by their column bounds, read by pyarrow with the filter."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import EqualTo
    cat = SqlCatalog("bench", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/warehouse")
    return cat.load_table("archive.metrics").scan(row_filter=EqualTo("workspace_id", ws)).to_arrow().num_rows


READERS = {"dwsync": read_dwsync, "delta": read_delta, "iceberg": read_iceberg}


def child_read(kind: str, root: str, ws: int, repeat: int) -> None:
    times = []
    rows = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = READERS[kind](root, ws)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"rows": rows, "seconds": times}))


# ---------------------------------------------------------------- I/O accounting with strace

SYSCALL = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*?)\)?\s*=\s*(-?\d+)")


def traced_read(kind: str, root: Path, ws: int) -> dict:
    """Runs one read under strace; returns the objects opened and the bytes read under `root`
    (the layout's directory), split into data files and metadata (logs, manifests, catalog)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace"
        cmd = ["strace", "-f", "-qq", "-e", "trace=openat,read,pread64,readv,preadv,preadv2,close",
               "-e", "signal=none", "-s", "0", "-o", str(out),
               sys.executable, __file__, "child", kind, str(root), str(ws), "1"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows = json.loads(res.stdout.strip().splitlines()[-1])["rows"]
        lines = out.read_text().splitlines()
    fds: dict[int, str] = {}
    pending: dict[str, tuple[str, str]] = {}
    opened: dict[str, int] = {}
    read_bytes: dict[str, int] = {}
    read_calls: dict[str, int] = {}
    prefix = str(root) + "/"
    for line in lines:
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            name = rest.split("(", 1)[0]
            pending[pid] = (name, rest)
            continue
        m = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
        if m:
            name, first = pending.pop(pid, (m.group(1), ""))
            rest = first.replace("<unfinished ...>", "") + m.group(2)
        name = rest.split("(", 1)[0]
        ret_m = re.search(r"=\s*(-?\d+)", rest.rsplit(")", 1)[-1] if ")" in rest else rest)
        if not ret_m:
            continue
        ret = int(ret_m.group(1))
        if name == "openat":
            path_m = re.search(r'"([^"]*)"', rest)
            if ret >= 0 and path_m:
                fds[ret] = path_m.group(1)
                if path_m.group(1).startswith(prefix):
                    opened[path_m.group(1)] = opened.get(path_m.group(1), 0) + 1
        elif name == "close":
            fd_m = re.match(r"close\((\d+)", rest)
            if fd_m:
                fds.pop(int(fd_m.group(1)), None)
        elif name in ("read", "pread64", "readv", "preadv", "preadv2"):
            fd_m = re.match(r"\w+\((\d+)", rest)
            if fd_m and ret > 0:
                path = fds.get(int(fd_m.group(1)), "")
                if path.startswith(prefix):
                    read_bytes[path] = read_bytes.get(path, 0) + ret
                    read_calls[path] = read_calls.get(path, 0) + 1
    def is_data(p: str) -> bool:
        return p.endswith(".parquet") and "/_delta_log/" not in p and "/metadata/" not in p
    lists = [p for p in opened if os.path.isdir(p)]
    data = [p for p in opened if is_data(p)]
    meta = [p for p in opened if not is_data(p) and p not in lists]
    return {
        "rows": rows,
        "lists": len(lists),
        "objects_opened": len(data) + len(meta),
        "data_objects": len(data),
        "meta_objects": len(meta),
        "bytes_read": sum(read_bytes.values()),
        "data_bytes": sum(read_bytes.get(p, 0) for p in data),
        "meta_bytes": sum(read_bytes.get(p, 0) for p in meta),
        "read_calls": sum(read_calls.values()),
    }


def timed_read(kind: str, root: Path, ws: int, repeat: int) -> float:
    res = subprocess.run([sys.executable, __file__, "child", kind, str(root), str(ws), str(repeat)],
                         capture_output=True, text=True, check=True)
    return statistics.median(json.loads(res.stdout.strip().splitlines()[-1])["seconds"])


# ---------------------------------------------------------------- the run


def dir_size(root: Path) -> tuple[int, int]:
    f = files_under(root)
    return len(f), sum(f.values())


def measure_reads(kind: str, root: Path, wl: Workload, repeat: int) -> dict:
    out = {}
    for label, ws in (("large", wl.large), ("small", wl.small)):
        traced = traced_read(kind, root, ws)
        want = wl.expected_rows(ws)
        if traced["rows"] != want:
            raise SystemExit(f"{kind} {root}: workspace {ws} read {traced['rows']} rows, expected {want}")
        traced["seconds"] = timed_read(kind, root, ws, repeat)
        out[label] = traced
    return out


def write_layout(layout, wl: Workload) -> dict:
    times, objects, written = [], [], []
    for b in range(wl.batches):
        table, files, span = wl.batch(b)
        before = files_under(layout.root) if layout.root.exists() else {}
        t0 = time.perf_counter()
        layout.write(table, files, span)
        times.append(time.perf_counter() - t0)
        after = files_under(layout.root)
        new = [p for p in after if p not in before or after[p] != before[p]]
        objects.append(len(new))
        written.append(sum(after[p] for p in new))
    wl.offset = 0
    out = {"write_s_mean": statistics.mean(times), "write_s_max": max(times),
           "objects_per_window_mean": statistics.mean(objects), "objects_per_window_max": max(objects),
           "bytes_per_window_mean": statistics.mean(written)}
    if isinstance(layout, Dwsync):  # what every reader of one workspace reads whatever its size
        footers = provenance = 0
        for path in sorted((layout.root / f"p{PARTITION:04}").glob("*/metrics.parquet")):
            with open(path, "rb") as f:
                f.seek(-8, os.SEEK_END)
                footers += int.from_bytes(f.read(4), "little") + 8
            provenance += len(pq.read_metadata(path).metadata[b"dwsync.archive"])
        out["footer_bytes_total"], out["provenance_bytes_total"] = footers, provenance
    return out


def maintain_delta(root: Path, how: str) -> dict:
    """Rewrites the Delta table (z-order by workspace, or compaction), vacuums the old files
    and writes a checkpoint; returns what it cost."""
    from deltalake import DeltaTable, WriterProperties
    dt = DeltaTable(str(root))
    before = files_under(root)
    t0 = time.perf_counter()
    props = WriterProperties(compression="ZSTD", compression_level=1)
    if how == "zorder":
        metrics = dt.optimize.z_order(["workspace_id"], writer_properties=props)
    else:
        metrics = dt.optimize.compact(writer_properties=props)
    optimize_s = time.perf_counter() - t0
    dt = DeltaTable(str(root))
    dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    # A checkpoint, as a maintained table has one (delta-rs writes one every 100 commits): a
    # reader then replays the checkpoint instead of every commit before it.
    DeltaTable(str(root)).create_checkpoint()
    after = files_under(root)
    return {"optimize_s": optimize_s, "objects_written": len([p for p in after if p not in before]),
            "files_added": metrics.get("numFilesAdded"), "files_removed": metrics.get("numFilesRemoved")}


def run(args) -> None:
    results = []
    out = Path(args.out)
    for w in args.workspaces:
        wl = Workload(w, args.batches, args.rows)
        present = int((wl.counts > 0).sum(axis=1).mean())
        print(f"== W={w}: {args.batches} batches × {args.rows} rows, {present} workspaces per batch on average; "
              f"large {wl.large}: {wl.expected_rows(wl.large)} rows, small {wl.small}: {wl.expected_rows(wl.small)} rows",
              flush=True)
        base = out / f"w{w}"
        shutil.rmtree(base, ignore_errors=True)
        layouts = []
        if "dwsync" in args.layouts:
            layouts.append((Dwsync(base / "dwsync"), "dwsync"))
        if "dwsync-packed" in args.layouts:
            layouts.append((Dwsync(base / "dwsync-packed", pack_rows=args.pack_rows), "dwsync"))
        if "delta" in args.layouts:
            layouts.append((Delta(base / "delta", partitioned=False), "delta"))
        if "delta-rg" in args.layouts:
            layouts.append((Delta(base / "delta-rg", partitioned=False, row_group_rows=args.delta_row_group), "delta"))
        if "delta-part" in args.layouts:
            layouts.append((Delta(base / "delta-part", partitioned=True), "delta"))
        if "iceberg" in args.layouts:
            layouts.append((Iceberg(base / "iceberg", args.buckets), "iceberg"))
        for layout, kind in layouts:
            row = {"workspaces": w, "batches": args.batches, "rows_per_batch": args.rows,
                   "workspaces_per_batch": present, "layout": layout.name}
            try:
                row.update(write_layout(layout, wl))
                row["objects_total"], row["bytes_total"] = dir_size(layout.root)
                row["reads"] = measure_reads(kind, layout.root, wl, args.repeat)
            except Exception as e:  # report, go on with the other layouts
                row["error"] = f"{type(e).__name__}: {e}"
            results.append(row)
            print(json.dumps(row), flush=True)
            if layout.name in ("delta", "delta-part") and "error" not in row and not args.no_maintenance:
                how = "compact" if layout.name == "delta-part" else "zorder"
                m = {"workspaces": w, "batches": args.batches, "rows_per_batch": args.rows,
                     "workspaces_per_batch": present, "layout": f"{layout.name}+{how}"}
                m["maintenance"] = maintain_delta(layout.root, how)
                m["objects_total"], m["bytes_total"] = dir_size(layout.root)
                m["reads"] = measure_reads(kind, layout.root, wl, args.repeat)
                results.append(m)
                print(json.dumps(m), flush=True)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(table_md(results))


def table_md(results: list[dict]) -> str:
    """The results as a markdown table: per read, objects opened (of them metadata: logs,
    manifests, catalog) / bytes read / time."""
    lines = ["| W | workspaces / batch | layout | objects / window | write / window | size | "
             "small workspace: objects (meta) / read / time | large workspace: objects (meta) / read / time |",
             "|---:|---:|---|---:|---:|---:|---|---|"]
    for r in results:
        head = f"| {r['workspaces']:,} | {r['workspaces_per_batch']:,} | {r['layout']}"
        if r["batches"] != 20:
            head += f" (N = {r['batches']})"
        if "error" in r:
            lines.append(f"{head} | error: {r['error'][:80]} | | | | |")
            continue
        if "maintenance" in r:
            m = r["maintenance"]
            per_window = f"rewrite: {m['objects_written']:,}"
            write = f"{m['optimize_s']:.1f} s once"
        else:
            per_window = f"{r['objects_per_window_mean']:,.0f}" + (
                f" (max {r['objects_per_window_max']:,})"
                if r["objects_per_window_max"] != round(r["objects_per_window_mean"]) else "")
            write = seconds(r["write_s_mean"])

        def rd(x):
            return f"{x['objects_opened']:,} ({x['meta_objects']:,}) / {mib(x['bytes_read'])} / {seconds(x['seconds'])}"
        lines.append(f"{head} | {per_window} | {write} | {mib(r['bytes_total'])} | "
                     f"{rd(r['reads']['small'])} | {rd(r['reads']['large'])} |")
    return "\n".join(lines)


def seconds(s: float) -> str:
    return f"{s:.1f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 / 10 else f"{n / 1024:.0f} KiB"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        kind, root, ws, repeat = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        child_read(kind, root, ws, repeat)
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="write every layout, then read a large and a small workspace")
    r.add_argument("--workspaces", type=int, nargs="+", default=[100, 1000, 10000])
    r.add_argument("--batches", type=int, default=20, help="windows (batches) of one partition")
    r.add_argument("--rows", type=int, default=50_000, help="metrics rows per batch")
    r.add_argument("--layouts", nargs="+",
                   default=["dwsync", "dwsync-packed", "delta", "delta-rg", "delta-part", "iceberg"])
    r.add_argument("--pack-rows", type=int, default=8192, help="least rows of a dwsync-packed row group")
    r.add_argument("--delta-row-group", type=int, default=8192, help="row group rows of the delta-rg layout")
    r.add_argument("--buckets", type=int, default=16, help="Iceberg's bucket(N, workspace_id)")
    r.add_argument("--no-maintenance", action="store_true",
                   help="skip the Delta tables' z-order / compaction (long with delta-part at W=10,000)")
    r.add_argument("--repeat", type=int, default=3, help="timed reads (median)")
    r.add_argument("--out", default="/tmp/archive-layout", help="scratch directory (deleted per W)")
    r.add_argument("--keep", action="store_true", help="keep the written layouts")
    r.add_argument("--json", help="write the results here")
    t = sub.add_parser("table", help="print the markdown table of results files")
    t.add_argument("json", nargs="+")
    args = p.parse_args()
    if args.cmd == "run":
        run(args)
    else:
        print(table_md([r for f in args.json for r in json.loads(Path(f).read_text())]))


if __name__ == "__main__":
    main()
