"""`python`: a transform of your own, built by a factory you name.

    {type: python, factory: "mytransforms.pii:make_scrubber", columns: [ssn]}

`factory` is `package.module:callable`, importable on the sink's Python
path. It is called once, at config load and again when the sink starts,
with every other option as a keyword argument (`make_scrubber(columns=["ssn"])`),
and returns an object with the `transforms.base.Transform` methods: `apply`
and `schema`. It selects its own tables (`change.schema.schema` and
`.table` are the source's names). To send one change to the dead-letter
topic, raise `transforms.base.TransformError`; to stop the sink because a
table does not fit, raise `transforms.base.SchemaError`. Any other exception
stops the sink with its Kafka positions untouched.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, cast

from transforms.base import OptionError, Transform
from transforms.options import Options

OPTIONS: dict[str, str] | None = None  # beyond factory, any option: the factory checks them
FACTORY_HELP = "package.module:callable that returns the transform"
_PATH = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def load_factory(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise OptionError(
            "factory",
            f"cannot import {module_name}: {exc}",
            "install the module or add its directory to PYTHONPATH",
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise OptionError(
                "factory", f"{module_name} has no {attribute}", "name a callable in that module"
            )
        found = getattr(found, part)
    if not callable(found):
        raise OptionError("factory", f"{path} is not callable", "name a function or a class")
    return found


def build(options: Options) -> Transform:
    described = Options(options.raw, {"factory": FACTORY_HELP})
    path = described.text("factory")
    if not _PATH.fullmatch(path):
        raise OptionError("factory", "must be package.module:callable", "for example mypkg.t:make")
    factory = load_factory(path)
    kwargs = {name: value for name, value in options.raw.items() if name != "factory"}
    try:
        transform = factory(**kwargs)
    except OptionError:
        raise
    except Exception as exc:
        # the factory rejects its options: its own words are the best hint we have
        raise OptionError("factory", f"{path} failed: {type(exc).__name__}: {exc}", "") from None
    missing = [m for m in ("apply", "schema") if not callable(getattr(transform, m, None))]
    if missing:
        raise OptionError(
            "factory",
            f"{path} returned an object without {' and '.join(missing)}",
            "return an object with apply(change) and schema(schema) (transforms.base.Transform)",
        )
    return cast(Transform, transform)
