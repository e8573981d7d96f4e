"""The runner: suite -> bulk requests -> backend -> scored records in a run folder."""
