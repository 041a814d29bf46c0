"""Multipart uploads read as a stream, in memory, under the service's limits.

Starlette's own form parser reads a whole request (spooling every file past 1 MB to the temporary
folder) before a handler can look at a size. Here the body is fed, chunk by chunk as it arrives,
to python-multipart's streaming parser with running byte counts, so a request is refused as soon
as it passes a limit: by its declared ``Content-Length`` before any of the body is read, or at the
first byte past ``serve.max_upload_mb`` (one file) or ``serve.max_request_mb`` (the request). At
most ``serve.max_files`` parts are accepted, and a body that sends nothing for
``serve.upload_stall_s`` is abandoned (408). Nothing is written to disk: one request holds at most
``max_request_mb`` of uploads in memory."""

import asyncio
from dataclasses import dataclass, field

try:
    from python_multipart import MultipartParser
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import parse_options_header
except ModuleNotFoundError:  # python-multipart before 0.0.13
    from multipart import MultipartParser
    from multipart.exceptions import FormParserError
    from multipart.multipart import parse_options_header

from .errors import UploadRejected

MB = 2**20
# What the 400 for a body that is not the expected multipart says (as before this module).
MULTIPART_MESSAGE = ("send multipart/form-data with image files in the field 'files' (/predict), "
                     "one image in the field 'file' (/explain) or one video in the field 'file' "
                     "(/scan)")


@dataclass(frozen=True)
class Limits:
    max_upload: int  # bytes, one file
    max_request: int  # bytes, the whole body
    max_files: int  # parts in one request
    stall_s: float  # seconds without a byte
    # what the 413s name: the setting behind max_upload, and what max_files is
    upload_setting: str = "serve.max_upload_mb"
    files_setting: str = "serve.max_files"

    @classmethod
    def from_params(cls, serve_cfg: dict) -> "Limits":
        return cls(int(float(serve_cfg["max_upload_mb"]) * MB),
                   int(float(serve_cfg["max_request_mb"]) * MB),
                   int(serve_cfg["max_files"]), float(serve_cfg["upload_stall_s"]))

    def public(self) -> dict:
        """What GET /model says, so that a client can split its batches."""
        return {"max_upload_mb": self.max_upload / MB, "max_request_mb": self.max_request / MB,
                "max_files": self.max_files, "upload_stall_s": self.stall_s}




@dataclass
class Part:
    name: str
    filename: str | None  # None: a text field, not a file
    data: bytearray = field(default_factory=bytearray)
    size: int = 0


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


class _Collector:
    """python-multipart callbacks: keep the wanted file parts (in memory), count everything."""

    def __init__(self, limits: Limits, wanted: tuple[str, ...]):
        self.limits, self.wanted = limits, wanted
        self.parts: list[Part] = []
        self.current: Part | None = None
        self.header_name = self.header_value = b""
        self.disposition: bytes | None = None

    def on_part_begin(self):
        self.disposition, self.current = None, None
        if len(self.parts) >= self.limits.max_files:
            n = self.limits.max_files
            raise UploadRejected(413, f"more than {n} file{'s' if n != 1 else ''} in one "
                                      f"request ({self.limits.files_setting})")

    def on_header_field(self, data, start, end):
        self.header_name += data[start:end]

    def on_header_value(self, data, start, end):
        self.header_value += data[start:end]

    def on_header_end(self):
        if self.header_name.strip().lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self):
        _, options = parse_options_header(self.disposition)
        if b"name" not in options:
            raise UploadRejected(400, 'The Content-Disposition header field "name" must be '
                                      "provided.")
        filename = options.get(b"filename")
        self.current = Part(_decode(options[b"name"]),
                            None if filename is None else _decode(filename))
        self.parts.append(self.current)

    def on_part_data(self, data, start, end):
        part = self.current
        part.size += end - start
        if part.filename is not None and part.size > self.limits.max_upload:
            raise UploadRejected(413, f"{part.filename}: larger than {self.limits.max_upload} "
                                      f"bytes ({self.limits.upload_setting})")
        if part.filename is not None and part.name in self.wanted:
            part.data += data[start:end]  # other parts are counted, never kept

    def on_part_end(self):
        self.current = None

    def callbacks(self) -> dict:
        return {name: getattr(self, name) for name in (
            "on_part_begin", "on_header_field", "on_header_value", "on_header_end",
            "on_headers_finished", "on_part_data", "on_part_end")}


async def read_parts(request, limits: Limits, wanted: tuple[str, ...]) -> list[Part] | None:
    """The multipart parts of ``request`` (file data kept only for the fields in ``wanted``);
    None when the body is not multipart/form-data (it is then never read). Raises
    UploadRejected."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limits.max_request:
        raise UploadRejected(413, f"request body of {int(declared)} bytes is larger than "
                                  f"{limits.max_request} bytes (serve.max_request_mb)")
    ctype, options = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data":
        return None
    if not options.get(b"boundary"):
        raise UploadRejected(400, "Missing boundary in multipart.")
    collector = _Collector(limits, wanted)
    received = 0
    chunks = request.stream()
    try:
        parser = MultipartParser(options[b"boundary"], collector.callbacks())
        while True:
            try:
                chunk = await asyncio.wait_for(anext(chunks), limits.stall_s)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise UploadRejected(408, f"the request body sent nothing for {limits.stall_s:g} "
                                          "s (serve.upload_stall_s)") from None
            received += len(chunk)
            if received > limits.max_request:
                raise UploadRejected(413, f"request body larger than {limits.max_request} bytes "
                                          "(serve.max_request_mb)")
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise UploadRejected(400, "Invalid multipart data.") from None
    except ClientDisconnect:
        raise UploadRejected(400, "the client closed the connection during the upload") from None
    finally:
        await chunks.aclose()
    if collector.current is not None:  # the body ended inside a part
        raise UploadRejected(400, "Invalid multipart data.")
    return collector.parts


def validation_error(name: str, kind: str) -> UploadRejected:
    """The 400 a missing file, or a text field where a file belongs, gets (the shape FastAPI's
    validation errors had)."""
    error = ({"type": "missing", "loc": ["body", name], "msg": "Field required"}
             if kind == "missing" else
             {"type": "value_error", "loc": ["body", name],
              "msg": "Value error, Expected UploadFile, received: <class 'str'>"})
    return UploadRejected(400, {"message": MULTIPART_MESSAGE, "errors": [error]})


def upload_body(fields: dict[str, bool], required: bool) -> dict:
    """The OpenAPI requestBody of a multipart upload: ``fields`` maps a field name to whether
    it repeats (files are binary strings, as FastAPI describes ``UploadFile``)."""
    binary = {"type": "string", "contentMediaType": "application/octet-stream"}
    properties = {name: ({"type": "array", "items": binary} if repeats else binary)
                  for name, repeats in fields.items()}
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(fields)
    return {"requestBody": {"required": required,
                            "content": {"multipart/form-data": {"schema": schema}}}}
