"""What people look at: the plotly figures the pages place (charts) and the wrap-up report, its sections built from
the runs root (document) and written as HTML or Markdown (render)."""
