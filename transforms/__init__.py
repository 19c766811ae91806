"""Row transforms applied between consume and apply.

`base` is the seam (`Transform`) and its errors, `registry` builds the
configured list by `type`, `pipeline` runs it for the sink worker; each
built-in is a module named for its job (`filter` with its `expression`
language, `mask`, `cast` with `column_types`, ...). The README lists them.
"""
