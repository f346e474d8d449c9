"""A promotion pipeline (flows/pipeline.py): its list of steps (`strategy`), the run around it (`run`), the board
of its targets (`board`), their child flow runs (`children`) and the reads of their clusters (`targets`)."""
