"""The demo tenant ``make run`` seeds, so a new user meets a working desk."""
