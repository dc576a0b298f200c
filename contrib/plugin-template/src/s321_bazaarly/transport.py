"""Transport `bazaarly-http`: each batch is one HTTP(S) POST, and the acknowledgement is
the response (the request/response style of docs/plugins.md). Standard library only.

Promises (the s321 transport contract): it reports only what the receiver answered,
and an answer it cannot read is an error, never an acceptance; only RetriableError or
FatalError leave it, each chosen by what the receiver said; the token is a Secret and
is never logged; it holds at most one connection, and close() closes it.
"""

from __future__ import annotations

import http.client
import ssl
import time
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from s321.contracts import Ack, Batch, Capabilities, PipelineContext, Receipt, Serializer
from s321.errors import FatalError, RetriableError, TransportError, classify
from s321.paths import ConfigPath
from s321.secrets import Secret


class BazaarlyHttpOptions(BaseModel):
    """The `[pipelines.NAME.transport]` table."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="Where batches are POSTed: http(s)://host[:port]/path.")
    token: Secret = Field(description="Bearer token, as {env = ...} or {file = ...}.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for a connection or an answer.")
    max_batch: int = Field(default=500, ge=1, description="Records a request holds at most (the receiver's limit).")
    ca: ConfigPath | None = Field(default=None, description="CA bundle that signed the receiver's certificate.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url


class BazaarlyHttpTransport:
    def __init__(self, options: BazaarlyHttpOptions, context: PipelineContext, serializer: Serializer):
        self.options = options
        self.serializer = serializer
        # The answer comes with the response, so the acks of every batch sent before
        # the runtime asks are held here: the window is how many it sends before asking.
        self.capabilities = Capabilities(max_batch=options.max_batch, window=4, acknowledges=True)
        parts = urlsplit(options.url)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn: http.client.HTTPConnection | None = None
        self._acks: list[Ack] = []

    def connect(self) -> None:
        if self._conn is not None:
            return
        conn: http.client.HTTPConnection
        if self._https:
            context = ssl.create_default_context(cafile=str(self.options.ca) if self.options.ca else None)
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.options.timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.options.timeout)
        try:
            conn.connect()
        except Exception as exc:
            conn.close()
            raise classify(exc) from exc
        self._conn = conn

    def send(self, batch: Batch) -> Receipt:
        if self._conn is None:
            raise RetriableError("not connected")
        body = self.serializer.encode_batch(batch)
        headers = {"Content-Type": self.serializer.content_type, "Accept": self.serializer.content_type,
                   "Authorization": f"Bearer {self.options.token.get_secret_value()}"}
        try:
            self._conn.request("POST", self._path, body=body, headers=headers)
            response = self._conn.getresponse()
            answer = response.read()
        except Exception as exc:
            # The connection is in an unknown state: drop it; the runtime reconnects.
            self.close()
            raise _classified(exc) from exc
        if response.status != 200:
            self.close()
            raise _refusal(response.status, response.getheader("Retry-After"), batch.batch_id)
        try:
            ack = self.serializer.decode_ack(answer)
        except Exception as exc:
            self.close()
            raise RetriableError(f"the answer to batch {batch.batch_id} is not an acknowledgement: "
                                 f"{type(exc).__name__}: {exc}") from exc
        if ack.batch_id != batch.batch_id:
            self.close()
            raise RetriableError(f"the answer to batch {batch.batch_id} is about batch {ack.batch_id}")
        self._acks.append(ack)
        return Receipt(batch_id=batch.batch_id)

    def acks(self, timeout: float = 0.0) -> list[Ack]:
        # Every answer came with its response: nothing more can arrive. With none held,
        # the timeout is waited out all the same, so that the runtime's loop does not spin.
        if not self._acks and timeout > 0:
            time.sleep(timeout)
        out, self._acks = self._acks, []
        return out

    def close(self) -> None:
        # Acks already received stay: they are the receiver's word, whatever the link does.
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


def _classified(exc: Exception) -> TransportError:
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, ConnectionError):
        # A status line or body cut short: the receiver went away mid-answer.
        return RetriableError(f"the receiver's answer was cut short: {type(exc).__name__}")
    return classify(exc)


def _refusal(status: int, retry_after: str | None, batch_id: str) -> TransportError:
    """What an HTTP status means for the batch: fatal when sending it again cannot help."""
    if status in (401, 403):
        return FatalError(f"the receiver refused the token (HTTP {status}): check `token`")
    if status == 413:
        return FatalError(f"batch {batch_id} is over the receiver's size limit (HTTP 413): lower `max_batch`")
    if status in (408, 429) or status >= 500:
        # The runtime retries with its own backoff; the receiver's hint goes in the
        # message, so an operator sees it in `s321 status`.
        hint = f", it asks to retry after {retry_after} s" if retry_after else ""
        return RetriableError(f"the receiver is busy or failing (HTTP {status}){hint}")
    return FatalError(f"the receiver refused batch {batch_id} (HTTP {status})")
