"""Call records a dialer posts: filed on the open ticket or lead of the number called
(or calling), else kept unmatched for staff to file or dismiss."""
