"""Presenting results: plots, the HTML/Markdown report, the capacity spreadsheet and its formula twins,
and the table/JSON/CSV renderers. Never imported by the model, the measurements or the planners."""
