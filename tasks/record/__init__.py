"""What a release leaves behind: who ran it for its history entry (`history`; the entry itself and the release
record on the Service are pure data in tasks/decisions, `history` and `annotations`), Prefect events (`events`),
artifacts and the timeline (`report`), the plan's artifact (`plan_render`) and the journal that writes them
together (`journal`)."""
