"""Reports: card-shaped tables built only from run folders."""
