"""Remote channels: where a hold reaches people who are not at the terminal, and how they answer."""
