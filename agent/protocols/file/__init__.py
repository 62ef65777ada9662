"""File-drop MES sink: one JSON file per record, evidence copies, the folder probe."""
