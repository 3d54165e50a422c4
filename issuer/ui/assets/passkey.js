(function () {
	"use strict";
	// Passkey ceremonies (issuer/passkey_endpoint.go): a button[data-passkey] asks its
	// data-begin endpoint for the options, runs navigator.credentials.create ("register")
	// or get ("signin"), and posts the result in form#passkey-<kind>.
	function buffer(s) {
		s = s.replace(/-/g, "+").replace(/_/g, "/");
		var bin = atob(s + "===".slice((s.length + 3) % 4)), out = new Uint8Array(bin.length);
		for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
		return out.buffer;
	}
	function text(buf) {
		if (!buf) return undefined;
		var b = new Uint8Array(buf), s = "";
		for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
		return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
	}
	function ids(list) {
		(list || []).forEach(function (c) { c.id = buffer(c.id); });
	}
	function show(msg) {
		var p = document.querySelector("[data-passkey-error]");
		if (p) { p.textContent = msg; p.hidden = false; }
	}
	async function run(kind, begin, form) {
		var resp = await fetch(begin, {
			method: "POST", credentials: "same-origin",
			headers: {"Content-Type": "application/x-www-form-urlencoded"},
			body: "csrf_token=" + encodeURIComponent(form.elements.csrf_token.value)
		});
		var opts = await resp.json();
		if (!resp.ok) throw new Error(opts.error_description || "The passkey request was refused.");
		var pk = opts.publicKey, cred, out;
		pk.challenge = buffer(pk.challenge);
		if (kind === "register") {
			pk.user.id = buffer(pk.user.id);
			ids(pk.excludeCredentials);
			cred = await navigator.credentials.create({publicKey: pk});
			out = {response: {
				clientDataJSON: text(cred.response.clientDataJSON),
				attestationObject: text(cred.response.attestationObject),
				transports: cred.response.getTransports ? cred.response.getTransports() : []
			}};
		} else {
			ids(pk.allowCredentials);
			cred = await navigator.credentials.get({publicKey: pk});
			out = {response: {
				clientDataJSON: text(cred.response.clientDataJSON),
				authenticatorData: text(cred.response.authenticatorData),
				signature: text(cred.response.signature),
				userHandle: text(cred.response.userHandle)
			}};
		}
		out.id = cred.id;
		out.rawId = text(cred.rawId);
		out.type = cred.type;
		out.clientExtensionResults = cred.getClientExtensionResults();
		if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
		form.elements.credential.value = JSON.stringify(out);
		HTMLFormElement.prototype.submit.call(form);
	}
	document.querySelectorAll("button[data-passkey]").forEach(function (b) {
		var kind = b.getAttribute("data-passkey"), form = document.getElementById("passkey-" + kind);
		if (!form || !window.PublicKeyCredential) {
			b.hidden = true;
			return;
		}
		b.addEventListener("click", function () {
			b.disabled = true;
			run(kind, b.getAttribute("data-begin"), form).catch(function (e) {
				b.disabled = false;
				show(e && e.name === "NotAllowedError" ? "The passkey was not used. Try again." :
					(e && e.message) || "The passkey did not work. Try again.");
			});
		});
	});
})();
