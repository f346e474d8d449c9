"""What a release leaves behind: the release record on the Service (`annotations`), its history (`history`),
Prefect events (`events`), artifacts and the timeline (`report`), the journal that writes them together
(`journal`), the approval pause and its form (`approval`), and webhook automations on events (`automations`)."""
