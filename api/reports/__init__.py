"""The weekly report for the utilities' engineers: one page and one CSV per section, built from a list of
sections (weekly.SECTIONS), so a utility adds its own section without touching the page or the routes."""
