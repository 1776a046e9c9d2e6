"""Stanford Cars (cars196) from manually downloaded files: TFDS's builder, whose URL is dead."""
