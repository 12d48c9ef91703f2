"""The base of both API hooks: settings read once, one session without the hook's own extras as headers, one
tenacity policy with one vocabulary (``retry_limit``, ``retry_delay``), and the call and retry counters.

A subclass names its connection extras (:attr:`ApiHook.own_extras`), reads its settings
(:meth:`ApiHook.read_settings`), finishes the session (:meth:`ApiHook.configure_session`) and says which failures
are transient (:func:`is_retryable` looks at the error's ``retryable`` class attribute).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import tenacity
from airflow.providers.http.hooks.http import HttpHook

if TYPE_CHECKING:
    from requests import Session

SettingsT = TypeVar("SettingsT")


def is_retryable(exc: BaseException) -> bool:
    """Retry predicate for tenacity: an error whose class says ``retryable = True``."""
    return bool(getattr(type(exc), "retryable", False))


class ApiHook(HttpHook, Generic[SettingsT]):
    """An HTTP API hook with typed settings, one lasting session, retries and per-operation counters.

    :param conn_id: the Airflow connection.
    :param retry_limit: attempts per call, the first one included.
    :param retry_delay: first back-off wait in seconds.
    """

    #: the API's name in log lines (``Jikeyun erp.warehouse.get: retry 1/5 ...``)
    api_name: ClassVar[str] = "API"
    #: connection extras of this hook; HttpHook would copy them into the HTTP headers
    own_extras: ClassVar[tuple[str, ...]] = ()

    def __init__(self, conn_id: str, *, retry_limit: int, retry_delay: float, **kwargs: Any) -> None:
        super().__init__(method="POST", http_conn_id=conn_id, **kwargs)
        self.retry_limit = max(1, retry_limit)
        self.retry_delay = retry_delay
        self.call_counts: Counter[str] = Counter()
        self.retry_counts: Counter[str] = Counter()
        self._session: Session | None = None

    # -- connection ------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> SettingsT:
        """The connection, read and validated once."""
        return self.read_settings(self.get_connection(self.http_conn_id))

    def read_settings(self, conn: Any) -> SettingsT:
        """Validate the connection into the hook's settings model."""
        raise NotImplementedError

    def session_options(self) -> dict[str, Any]:
        """``extra_options`` for the session (HttpHook's ``get_conn``)."""
        return {}

    def configure_session(self, session: Session) -> None:
        """Finish the new session: auth, headers, base URL."""

    def get_conn(self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None) -> Session:
        """One session for the hook's lifetime (HttpHook would build one per call); own extras are no headers."""
        if self._session is None:
            session = super().get_conn(headers, extra_options or self.session_options())
            for name in self.own_extras:
                session.headers.pop(name, None)
            self.configure_session(session)
            self._session = session
        return self._session

    def close(self) -> None:
        """Close the HTTP session (the next call opens a new one)."""
        if self._session is not None:
            self._session.close()
        self._session = None

    # -- retries ---------------------------------------------------------------------------------------
    def retrying(
        self,
        operation: str,
        *,
        stop: tenacity.stop.stop_base | None = None,
        wait: Callable[[tenacity.RetryCallState], float] | None = None,
    ) -> tenacity.Retrying:
        """The retry policy of one call: transient errors only, ``retry_limit`` attempts, exponential back-off
        from ``retry_delay`` (capped at 30 s) unless ``stop``/``wait`` say otherwise; each retry is counted in
        :attr:`retry_counts` and logged."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            stop=stop or tenacity.stop_after_attempt(self.retry_limit),
            wait=wait or tenacity.wait_exponential(multiplier=self.retry_delay, max=30),
            before_sleep=lambda state: self._log_retry(operation, state),
            reraise=True,
        )

    def _log_retry(self, operation: str, state: tenacity.RetryCallState) -> None:
        self.retry_counts[operation] += 1
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        self.log.warning(
            "%s %s: retry %d/%d in %.2fs%s because %s",
            self.api_name, operation, state.attempt_number, self.retry_limit - 1, state.upcoming_sleep or 0.0,
            f" (Retry-After {retry_after:g}s)" if retry_after else "", exc,
        )
