"""Pictures: image grids now; GIFs, plots and the HTML report as later parts need them."""
