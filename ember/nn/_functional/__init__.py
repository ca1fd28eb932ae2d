"""The parts of ember.nn.functional, one topic per module; import them from ember.nn.functional."""
