"""Working with dead letters (`cdc dlq`): list them, look at one, apply them
again once their cause is fixed (redrive), or mark them handled (skip); and
move a partition past a message at its head that the sink cannot get past.

A dead letter is named by its offset on `<prefix>.__dlq` (its id, also in the
sink's `dead_lettered` log line). The same message set aside again before
anyone decided on it (a crash between sending it and committing its batch)
is folded into the first; one set aside again after a decision (a replay
met it again) is a new dead letter.

What was decided is kept on the target, in `cdc_dead_letters` next to the
sink's `cdc_offsets` (`sinks.postgres.dlq_decisions`,
`sinks.mysql.dlq_decisions`), rather than on a compacted topic: the decision
is about rows of the target, whoever inspects the target sees it with them,
and it is read with the sink's offsets that the redrive rule compares with.

The redrive rule (`sinks.dlq.supersede`): a dead letter is applied again only
if no later message of its key (nor a table-wide event: truncate, drop,
rename) lies between it and the sink's stored offset of its partition, that
is, only if the target holds nothing newer of that row. Otherwise it is
superseded and not applied. Every change of a key goes to one partition, so
that partition is the whole history of the row.
"""
