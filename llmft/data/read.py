"""Read a data file into records, whatever its shape; every problem becomes an Issue.

Formats: JSONL, JSON arrays, CSV and Parquet, chosen by extension and checked by content.
Nothing here raises on bad input: a truncated file, binary garbage, a 1 GB line, a wrong
encoding or a broken CSV header each yield an Issue with the line or record number. Memory is
bounded by ReadLimits (settings DATA_MAX_LINE_MB, DATA_MAX_FILE_MB, DATA_MAX_PARQUET_MB): a
line or Parquet row above the line limit is skipped, a JSON array or CSV above the file limit is
refused unread, and a Parquet file is refused before it expands past its limit (its metadata's
uncompressed size first, then the decoded size batch by batch: a dictionary page can repeat one
large string for every row).
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llmft.data.issues import Issue, Location

MIB = 1024 * 1024
JSON_CELL_COLUMNS = ("messages", "conversations")  # CSV cells holding JSON lists
PARQUET_BATCH_ROWS = 64


@dataclass(frozen=True)
class ReadLimits:
    line_bytes: int = 64 * MIB  # a JSONL line, a CSV cell, a Parquet row
    file_bytes: int = 256 * MIB  # a file read whole (JSON array, CSV)
    parquet_bytes: int = 1024 * MIB  # what a Parquet file may expand to

    @classmethod
    def from_settings(cls, settings=None) -> "ReadLimits":
        from llmft.settings import ambient_settings

        settings = settings or ambient_settings()
        return cls(settings.data_max_line_mb * MIB, settings.data_max_file_mb * MIB, settings.data_max_parquet_mb * MIB)


@dataclass(frozen=True)
class RawRecord:
    loc: Location
    value: object


def read_records(path: Path, *, limits: ReadLimits | None = None) -> Iterator[RawRecord | Issue]:
    """Yield each record of `path` (or the Issue that stands where it could not be read); `limits` defaults to
    the settings'."""
    path = Path(path)
    limits = limits or ReadLimits.from_settings()
    try:
        fmt = detect_format(path)
    except OSError as error:
        yield Issue("file_unreadable", f"cannot read {path.name}: {error.strerror or error}")
        return
    if fmt is None:
        yield Issue("file_unreadable", f"{path.name}: unsupported format; use .jsonl, .json, .csv or .parquet")
        return
    if _is_utf16(path):
        yield Issue("undecodable_bytes", f"{path.name} is UTF-16 encoded; save it as UTF-8", line=1)
        return
    reader = {"jsonl": _read_jsonl, "json": _read_json_array, "csv": _read_csv, "parquet": _read_parquet}[fmt]
    seen_any = False
    for item in reader(path, limits):
        seen_any = True
        yield item
    if not seen_any:
        yield Issue("file_empty", f"{path.name} holds no records")


def detect_format(path: Path) -> str | None:
    """The format by extension, corrected by the first bytes (a .json of lines is JSONL)."""
    suffix = path.suffix.lower()
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"PAR1") or suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json" or first in (b"[", b"{"):
        return "json" if first == b"[" else "jsonl"
    return None


def _read_jsonl(path: Path, limits: ReadLimits) -> Iterator[RawRecord | Issue]:
    record, max_line_bytes = 0, limits.line_bytes
    with open(path, "rb") as handle:
        for number, raw in enumerate(_bounded_lines(handle, max_line_bytes), start=1):
            if raw is None:
                record += 1
                yield Issue("line_too_large", f"line is larger than {max_line_bytes} bytes (DATA_MAX_LINE_MB)",
                            line=number, record=record)
                continue
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            record += 1
            loc = Location(record=record, line=number)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield loc.issue("undecodable_bytes", f"byte {error.start + 1} of the line is not UTF-8 ({error.reason})")
                continue
            try:
                yield RawRecord(loc, json.loads(text))
            except (ValueError, RecursionError) as error:
                yield loc.issue("invalid_json", _json_message(error))


def _bounded_lines(handle: io.BufferedReader, limit: int) -> Iterator[bytes | None]:
    """Lines of at most `limit` bytes; a longer line is skipped in chunks and yields None."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := handle.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def _read_json_array(path: Path, limits: ReadLimits) -> Iterator[RawRecord | Issue]:
    text = yield from _read_text(path, limits)
    if text is None:
        return
    decoder = json.JSONDecoder()
    pos, line, record = _skip_ws(text, 0), 1, 0
    line += text.count("\n", 0, pos)
    if not text.startswith("[", pos):
        yield Issue("invalid_json", "a .json file must hold an array of records (or one record per line)", line=line)
        return
    pos += 1
    while True:
        nxt = _skip_ws(text, pos)
        line += text.count("\n", pos, nxt)
        pos = nxt
        if text.startswith("]", pos) and record == 0:
            break
        record += 1
        try:
            value, end = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as error:
            yield Issue("invalid_json", _json_message(error), line=line + _lines_into(error, text, pos), record=record)
            return
        yield RawRecord(Location(record=record, line=line), value)
        line += text.count("\n", pos, end)
        pos = _skip_ws(text, end)
        line += text.count("\n", end, pos)
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]", pos):
            break
        else:
            yield Issue("invalid_json", "expected ',' or ']' after a record (is the file truncated?)", line=line, record=record)
            return
    if _skip_ws(text, pos + 1) != len(text):
        yield Issue("invalid_json", "extra data after the closing ']'", line=line + text.count("\n", pos, len(text.rstrip())))


def _read_csv(path: Path, limits: ReadLimits) -> Iterator[RawRecord | Issue]:
    text = yield from _read_text(path, limits)
    if text is None:
        return
    if not text.strip():
        return
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    csv.field_size_limit(limits.line_bytes)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        yield Issue("csv_header", f"the header cannot be parsed: {error}", line=1)
        return
    names = [name.strip() for name in header or []]
    if not names or any(not name for name in names) or len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        detail = f"repeated column {repeated[0]!r}" if repeated else "empty column name"
        yield Issue("csv_header", f"line 1 must name every column once ({detail if names else 'no header'})", line=1)
        return
    record, last_line = 0, reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Issue("csv_row", f"cannot parse the row: {error}", line=last_line + 1, record=record + 1)
            return
        start, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        record += 1
        loc = Location(record=record, line=start)
        if len(row) > len(names):
            yield loc.issue("csv_row", f"{len(row)} cells but the header names {len(names)} columns")
            continue
        value: dict[str, object] = dict(zip(names, row))
        for column in JSON_CELL_COLUMNS:
            cell = value.get(column)
            if isinstance(cell, str) and cell.strip():
                try:
                    value[column] = json.loads(cell)
                except (ValueError, RecursionError) as error:
                    yield loc.issue("invalid_json", f"the {column} cell is not JSON: {_json_message(error)}", field=column)
                    value = None
                    break
        if value is not None:
            yield RawRecord(loc, value)


def _read_parquet(path: Path, limits: ReadLimits) -> Iterator[RawRecord | Issue]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        stated = sum(table.metadata.row_group(i).total_byte_size for i in range(table.metadata.num_row_groups))
        if stated > limits.parquet_bytes:
            yield Issue("file_too_large", f"expands to {stated} bytes, over the {limits.parquet_bytes} byte limit "
                                          "(DATA_MAX_PARQUET_MB)")
            return
        # Text columns stay dictionary-encoded until a batch's decoded size is known.
        text_columns = [column.path for column in table.schema if column.physical_type == "BYTE_ARRAY"]
        batches = pq.ParquetFile(path, read_dictionary=text_columns).iter_batches(batch_size=PARQUET_BATCH_ROWS)
        record, total = 0, 0
        for batch in batches:
            size = _decoded_bytes(batch)
            total += size
            if total > limits.parquet_bytes:
                yield Issue("file_too_large", f"expands to more than {limits.parquet_bytes} bytes by record "
                                              f"{record + batch.num_rows} (DATA_MAX_PARQUET_MB)", record=record + 1)
                return
            rows = batch.to_pylist() if size <= limits.line_bytes else None  # else row by row, each measured
            for index in range(batch.num_rows):
                record += 1
                if rows is not None:
                    yield RawRecord(Location(record=record), rows[index])
                elif _decoded_bytes(row := batch.slice(index, 1)) > limits.line_bytes:
                    yield Issue("line_too_large", f"the row is larger than {limits.line_bytes} bytes "
                                                  "(DATA_MAX_LINE_MB)", record=record)
                else:
                    yield RawRecord(Location(record=record), row.to_pylist()[0])
    except Exception as error:  # pyarrow raises many types for a corrupt file; all mean the same here
        yield Issue("file_unreadable", f"not a readable Parquet file: {error}")


def _decoded_bytes(data) -> int:
    """Bytes `data` (a record batch or array) takes once decoded, each dictionary value counted every time it is
    used; computed on the encoded form, so a dictionary bomb is measured without being expanded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(data, pa.RecordBatch):
        return sum(_decoded_bytes(column) for column in data.columns)
    kind = data.type
    if pa.types.is_dictionary(kind):
        per_value = pc.binary_length(data.dictionary) if _is_text(kind.value_type) else None
        if per_value is None:
            return _decoded_bytes(data.dictionary_decode())
        return int(pc.sum(pc.take(per_value, data.indices)).as_py() or 0) + data.indices.nbytes
    if _is_text(kind):
        return int(pc.sum(pc.binary_length(data)).as_py() or 0) + len(data) * 4
    if pa.types.is_struct(kind):
        return sum(_decoded_bytes(field) for field in data.flatten())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        return _decoded_bytes(data.flatten()) + len(data) * 4
    return data.nbytes


def _is_text(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
        or pa.types.is_large_binary(kind)


def _read_text(path: Path, limits: ReadLimits) -> Iterator[Issue]:
    """The whole file as text, or an Issue (generator-return idiom: `text = yield from`)."""
    size = path.stat().st_size
    if size > limits.file_bytes:
        yield Issue("file_too_large", f"{size} bytes is over the {limits.file_bytes} byte limit for a file read "
                                      "whole (DATA_MAX_FILE_MB); use JSONL, which is read line by line")
        return None
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        hint = " (the file looks like UTF-16; save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        yield Issue("undecodable_bytes", f"byte {error.start + 1} is not UTF-8 ({error.reason}){hint}", line=line)
        return None


def _is_utf16(path: Path) -> bool:
    """A UTF-16 byte-order mark followed by text with NUL bytes (ASCII in UTF-16)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    return head[:2] in (b"\xff\xfe", b"\xfe\xff") and b"\x00" in head[2:]


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _lines_into(error: Exception, text: str, start: int) -> int:
    pos = getattr(error, "pos", None)
    return text.count("\n", start, pos) if isinstance(pos, int) and pos >= start else 0


def _json_message(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} (column {error.colno})"
    return str(error)
