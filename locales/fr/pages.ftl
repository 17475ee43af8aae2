# Les messages des pages de tickets (français). Mêmes identifiants dans chaque langue.

page-footer = Cette page vous est présentée par { $brand }.
page-continue = Continuer
page-back-to-app = Retour à { $app }

## Liens inutilisables
page-link-used-title = Lien déjà utilisé
page-link-used = Ce lien a déjà été utilisé. Veuillez en demander un nouveau.
page-link-expired-title = Lien expiré
page-link-expired = Ce lien a expiré. Veuillez en demander un nouveau.
page-link-invalid-title = Lien non valide
page-link-invalid = Ce lien n'est pas valide. Vérifiez que vous avez ouvert le lien complet de l'e-mail.
page-session-title = Veuillez réessayer
page-session = Le formulaire a expiré ou a été envoyé depuis une autre page. Ouvrez à nouveau le lien de l'e-mail.
page-too-many-title = Trop de tentatives
page-too-many = Trop de tentatives. Attendez une minute, puis réessayez.
page-error-title = Une erreur s'est produite
page-error = L'opération ne peut pas aboutir. Veuillez réessayer plus tard.

## Vérification de l'adresse e-mail
page-verify-title = Vérifiez votre adresse e-mail
page-verify-intro = Confirmez que { $email } est bien votre adresse e-mail.
page-verify-button = Vérifier mon adresse
page-verify-done-title = Adresse vérifiée
page-verify-done = Votre adresse e-mail a bien été vérifiée.
page-verify-already = Ce compte est déjà vérifié.
page-verify-no-user = Le compte n'existe pas ou le code de vérification n'est pas valide.

## Changement de mot de passe
page-password-title = Changez votre mot de passe
page-password-intro = Choisissez un nouveau mot de passe pour { $email }.
page-password-new = Nouveau mot de passe
page-password-confirm = Confirmez le nouveau mot de passe
page-password-hint = Utilisez au moins { $min } caractères. Une longue suite de mots sans rapport est robuste et facile à retenir.
page-password-button = Changer le mot de passe
page-password-mismatch = Les deux mots de passe ne correspondent pas.
page-password-too-short = Le mot de passe doit contenir au moins { $min } caractères.
page-password-too-long = Le mot de passe doit contenir au plus { $max } caractères.
page-password-weak = Ce mot de passe est trop facile à deviner. Allongez-le ou ajoutez des mots sans rapport.
page-password-done-title = Mot de passe changé
page-password-done = Vous pouvez maintenant vous connecter à l'application avec le nouveau mot de passe.
page-password-failed = L'opération ne peut pas aboutir. Veuillez réessayer.

## Inscription MFA
page-mfa-title = Activez l'authentification à deux facteurs
page-mfa-otp-intro = Scannez ce code QR avec une application d'authentification, puis saisissez le code à six chiffres qu'elle affiche.
page-mfa-otp-qr-alt = Code QR à scanner avec votre application d'authentification
page-mfa-otp-manual = Impossible de le scanner ? Saisissez plutôt cette clé dans l'application :
page-mfa-code = Code à six chiffres
page-mfa-verify-button = Vérifier et activer
page-mfa-otp-wrong = Ce code n'est pas correct. Vérifiez l'heure de votre appareil et saisissez le code actuel.
page-mfa-email-intro = Nous allons envoyer un code à six chiffres à { $email }.
page-mfa-email-send = M'envoyer un code
page-mfa-email-sent = Nous avons envoyé un code à { $email }. Il expire dans 10 minutes.
page-mfa-email-wrong = Ce code n'est pas correct ou il a expiré.
page-mfa-done-title = L'authentification à deux facteurs est activée
page-mfa-done = Votre compte est désormais protégé par l'authentification à deux facteurs.
page-mfa-already = L'authentification à deux facteurs est déjà activée.
