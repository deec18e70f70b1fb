"""One render: a request to segments, graphs run, clips stitched into the video."""
