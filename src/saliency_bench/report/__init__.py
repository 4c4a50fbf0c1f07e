"""Tables -> what a reader sees: the figures (`figures/`) and the HTML pages (`html`)."""
