"""ControlNet: units on the shared pipeline (engine side), and the preprocessors that make control maps."""
