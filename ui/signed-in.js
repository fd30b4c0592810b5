// The answer to a sign-in: keeps this tab's session (sessionStorage: this tab only, gone when it
// closes) and opens the dashboard at the page the link named (its #fragment), replacing the
// sign-in in the history so Back does not come here again.
const meta = document.querySelector('meta[name="callhome-session"]');
sessionStorage.setItem("callhome.session", meta.content);
meta.remove();
location.replace(`/${location.hash}`);
