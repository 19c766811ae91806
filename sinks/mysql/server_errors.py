"""What a MySQL/MariaDB server error means to the sink: retry the batch,
apply it change by change (a value refused), or stop."""

from __future__ import annotations

import pymysql

from cdc.errors import TerminalError, TransientError

# Server errors that reject one change's values, not the batch: the worker
# then applies the batch change by change and dead-letters the refused ones.
# (PyMySQL files several of them under OperationalError, which means "retry".)
_REJECTED = {1048, 1062, 1264, 1265, 1292, 1300, 1366, 1367, 1406, 1411, 1416, 1690, 3140, 3819}
_REJECTED |= {4025}  # MariaDB: CONSTRAINT failed, e.g. json_valid on a JSON column
_NO_DEFAULT = 1364


def transient(exc: Exception) -> bool:
    """Lost connections (client errors 2000-2999), lock waits and deadlocks."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    return 2000 <= code < 3000 or code in (1205, 1213) or isinstance(exc, pymysql.InterfaceError)


def classify(exc: Exception) -> Exception:
    """PyMySQL's class for a server error, corrected where the worker cares."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    data = isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError)
    if code in _REJECTED and not data:
        return pymysql.err.DataError(*exc.args)  # type: ignore[no-any-return]
    if code == _NO_DEFAULT:
        return TerminalError(
            f"target column without a default is missing from the source: {exc.args[-1]}",
            "give the target column a default or drop it",
        )
    if isinstance(exc, pymysql.err.InterfaceError):
        # PyMySQL's word for a connection it closed after the server went away (a restart,
        # a network cut): the retry loop connects again
        return TransientError(f"the connection to the target is closed: {exc!r}")
    return exc
