"""Status names, one home: what an artifact's export or benchmark row ended as, and how a pipeline stage ended."""

# an artifact (export result, bench row)
PASSED = "passed"
FAILED = "failed"  # could not be made or run
FAILED_CHECK = "failed-check"  # made, but its parity with the float model is below the floor
SKIPPED = "skipped"  # not made here (no GPU, a grey-only format on a colour dataset, ...)
FAILURES = (FAILED, FAILED_CHECK)

# a pipeline stage
RAN = "ran"
RAN_WITH_FAILURES = "ran with failures"
SKIPPED_UP_TO_DATE = "skipped"
SKIPPED_WITH_FAILURES = "skipped with failures"
STAGE_FAILURES = (RAN_WITH_FAILURES, SKIPPED_WITH_FAILURES)
