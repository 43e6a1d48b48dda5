"""Category briefs for real data whose truth is a creator category (``audiencefit.training.real_data``'s YouTube
categories).

Each brief is written as a marketer pastes one: what the brand sells and, somewhere in it, who it wants to reach.
``audience`` is the audience clause alone, as a marketer correcting the reading would send it as a segment. In
about half of them the product belongs to another category than the audience (an energy drink for gamers, a bank
for football fans): the case where the product words pull the ranking towards the wrong creators (issue #19 §1).
Every category has an English and a French brief (the French pool is French text).

Categories without an audience a brand would name (YouTube's catch-alls "Entertainment" and "People & Blogs")
and those with fewer than 20 channels in the evaluation pool are not queried; their channels stay in the pool as
distractors.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CategoryBrief:
    """A brief, its audience clause, the category its audience belongs to, and the brief's language."""

    category: str
    language: str
    brief: str
    audience: str


YOUTUBE_BRIEFS: tuple[CategoryBrief, ...] = (
    CategoryBrief(
        "Music",
        "en",
        "Wireless earbuds with studio-grade sound and 30h battery. Looking for creators whose followers live for "
        "new music releases, concerts and music videos.",
        "people who love music, new songs, concerts and music videos",
    ),
    CategoryBrief(
        "Music",
        "fr",
        "Marque de boissons pétillantes bio qui sponsorise des festivals cet été : on veut toucher les fans de "
        "musique, de clips et de concerts.",
        "les fans de musique, de clips, de rap et de concerts",
    ),
    CategoryBrief(
        "Sports",
        "en",
        "Online bank with a no-fee card for under-30s. Campaign aimed at football and basketball fans who never "
        "miss a match or the highlights.",
        "sports fans who follow football, basketball and match highlights",
    ),
    CategoryBrief(
        "Sports",
        "fr",
        "Nous vendons des crampons et des maillots de foot. Cible : les passionnés de football et de sport qui "
        "regardent tous les matchs et les résumés.",
        "les passionnés de football et de sport qui regardent les matchs",
    ),
    CategoryBrief(
        "Comedy",
        "en",
        "Snack brand (spicy tortilla chips) launching a campaign built on sketches — we want audiences who watch "
        "comedy sketches, pranks and stand-up.",
        "people who watch comedy sketches, pranks, parodies and stand-up",
    ),
    CategoryBrief(
        "Comedy",
        "fr",
        "Application de covoiturage pour les 18-25 ans. Ton décalé, on cherche des créateurs d'humour : sketchs, "
        "parodies, caméras cachées.",
        "les jeunes qui regardent des sketchs, des parodies et de l'humour",
    ),
    CategoryBrief(
        "News & Politics",
        "en",
        "Subscription newsletter and podcast app. We want to reach people who follow politics, current affairs "
        "and the daily news.",
        "people who follow politics, elections and daily news",
    ),
    CategoryBrief(
        "News & Politics",
        "fr",
        "Un quotidien en ligne lance son offre étudiante : lecteurs qui suivent l'actualité, la politique et les "
        "débats de société.",
        "les personnes qui suivent l'actualité, la politique et les débats",
    ),
    CategoryBrief(
        "Howto & Style",
        "en",
        "Clean skincare and makeup brand, cruelty free. Target: women 18-34 into beauty tutorials, makeup looks, "
        "hair and fashion hauls.",
        "women into makeup tutorials, beauty, hair and fashion hauls",
    ),
    CategoryBrief(
        "Howto & Style",
        "fr",
        "Marque de cosmétiques naturels made in France. Nous ciblons les passionnées de maquillage, de tutos "
        "beauté, de coiffure et de mode.",
        "les passionnées de maquillage, de tutos beauté et de mode",
    ),
    CategoryBrief(
        "Film & Animation",
        "en",
        "Streaming service launching a new slate of originals; we need movie buffs — people who watch trailers, "
        "film reviews and animation.",
        "movie fans who watch film trailers, reviews and animated films",
    ),
    CategoryBrief(
        "Film & Animation",
        "fr",
        "Chaîne de cinémas : nouvelle carte illimitée. On veut parler aux cinéphiles, amateurs de bandes-annonces, "
        "de films et d'animation.",
        "les cinéphiles qui regardent des bandes-annonces et des films",
    ),
    CategoryBrief(
        "Science & Technology",
        "en",
        "We make a smart home hub. Audience: tech enthusiasts who watch smartphone reviews, gadget unboxings and "
        "science explainers.",
        "tech enthusiasts into smartphone reviews, gadgets and science",
    ),
    CategoryBrief(
        "Science & Technology",
        "fr",
        "Un opérateur mobile lance un forfait 5G. Cible : les geeks qui regardent des tests de smartphones, "
        "d'ordinateurs et de gadgets high-tech.",
        "les geeks fans de high-tech, de smartphones et de science",
    ),
    CategoryBrief(
        "Autos & Vehicles",
        "en",
        "Insurance start-up with pay-per-mile cover. Looking to reach car enthusiasts who love test drives, "
        "supercars and motorsport.",
        "car enthusiasts who love test drives, supercars and motorsport",
    ),
    CategoryBrief(
        "Autos & Vehicles",
        "fr",
        "Nous vendons des pneus et des accessoires auto. Cible : les passionnés de voitures, d'essais, de "
        "sportives et de moto.",
        "les passionnés de voitures, d'essais auto et de moto",
    ),
    CategoryBrief(
        "Gaming",
        "en",
        "Energy drink, sugar free, new flavour launch. We want creators whose audience plays video games and "
        "watches Let's Plays and streams.",
        "gamers who play video games and watch Let's Plays and streams",
    ),
    CategoryBrief(
        "Gaming",
        "fr",
        "Fabricant de chaises et de casques gaming : on cherche des joueurs de jeux vidéo qui suivent des "
        "streams, des let's play et l'e-sport.",
        "les joueurs de jeux vidéo qui regardent des streams et des let's play",
    ),
    CategoryBrief(
        "Education",
        "en",
        "Note-taking app for students. Audience: curious learners who watch lessons, explainers and "
        "documentaries to understand how things work.",
        "curious learners who watch lessons, explainers and documentaries",
    ),
    CategoryBrief(
        "Education",
        "fr",
        "Une plateforme de soutien scolaire en ligne veut toucher les curieux qui regardent des cours, des "
        "vidéos de vulgarisation et des documentaires.",
        "les curieux qui regardent des cours et de la vulgarisation",
    ),
    CategoryBrief(
        "Pets & Animals",
        "en",
        "Grain-free dog and cat food, delivered monthly. Looking for pet owners and animal lovers who watch "
        "videos of dogs, cats and wildlife.",
        "pet owners and animal lovers who watch dog, cat and wildlife videos",
    ),
    CategoryBrief(
        "Pets & Animals",
        "fr",
        "Une marque d'aspirateurs sans fil spécial poils d'animaux : on vise les amoureux des chiens, des chats "
        "et des animaux.",
        "les amoureux des chiens, des chats et des animaux",
    ),
)
"""11 categories × English and French."""
