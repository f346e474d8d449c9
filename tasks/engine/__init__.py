"""The release engine: every strategy (blue-green, canary, rollback, ...) is a list of `Step`s that a pure
function builds from preflight's facts; one executor (`executor.execute`) runs any such list, and the dry run
describes the same list (`steps.plan_of`), so the plan and the run cannot diverge. `undo` is the compensation
stack the executor unwinds; `report_only` runs a list that only reports (rollback, abort)."""
